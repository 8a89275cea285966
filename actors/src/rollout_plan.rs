//! The staged rollout's wave plan (docs/ARCHITECTURE.md, "Staged rollout"): the steps a policy names, the
//! cumulative wave sizes they give for a number of replicas, and the order in which replicas fill the waves. Pure
//! functions, so that the coordinator's decisions can be tested without a cluster.

pub use brokkr_config::rollout_steps::{Step, StepsError, parse_steps};

/// The size of each wave for `replicas` replicas, wave by wave (not cumulative): every step's replicas in all,
/// at least one in the first wave, a step that adds no replica skipped, and every replica in some wave. Empty for
/// no replicas.
#[must_use]
pub fn wave_sizes(steps: &[Step], replicas: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut covered = 0;
    for step in steps {
        let in_all = match *step {
            Step::Count(n) => n,
            Step::Percent(p) => (replicas * usize::from(p)).div_ceil(100),
        };
        let in_all = in_all.clamp(1, replicas.max(1)).min(replicas);
        if in_all > covered {
            sizes.push(in_all - covered);
            covered = in_all;
        }
    }
    if covered < replicas {
        sizes.push(replicas - covered);
    }
    sizes
}

/// The replicas (by uid) in the order they fill the waves: by a hash of the uid and the rollout's own salt, so the
/// order is fixed for one rollout, differs between rollouts, and no ConfigMap text can choose the first wave.
#[must_use]
pub fn wave_order<'a>(uids: &[&'a str], salt: &str) -> Vec<&'a str> {
    use sha2::{Digest, Sha256};
    let key = |uid: &str| Sha256::new().chain_update(salt).chain_update([0]).chain_update(uid).finalize();
    let mut ordered: Vec<&str> = uids.to_vec();
    ordered.sort_by_cached_key(|uid| key(uid));
    ordered.dedup();
    ordered
}

/// The waves: `uids` in [`wave_order`], cut into [`wave_sizes`].
#[must_use]
pub fn plan<'a>(steps: &[Step], uids: &[&'a str], salt: &str) -> Vec<Vec<&'a str>> {
    let ordered = wave_order(uids, salt);
    let mut rest = ordered.as_slice();
    wave_sizes(steps, ordered.len())
        .into_iter()
        .map(|size| {
            let (wave, after) = rest.split_at(size.min(rest.len()));
            rest = after;
            wave.to_vec()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(text: &[&str]) -> Vec<Step> {
        parse_steps(text).expect("valid steps")
    }

    #[test]
    fn the_waves_grow_by_their_steps_and_cover_every_replica_once() {
        let canary = steps(&["1", "25%", "100%"]);
        assert_eq!(wave_sizes(&canary, 1), [1]);
        assert_eq!(wave_sizes(&canary, 2), [1, 1], "25% of 2 is 1, the same as the first step: skipped");
        assert_eq!(wave_sizes(&canary, 4), [1, 3]);
        assert_eq!(wave_sizes(&canary, 10), [1, 2, 7]);
        assert_eq!(wave_sizes(&canary, 0), Vec::<usize>::new());
        assert_eq!(wave_sizes(&steps(&["100%"]), 5), [5], "one wave: today's behaviour with a gate");
        assert_eq!(wave_sizes(&steps(&["1%", "100%"]), 3), [1, 2], "at least one in the first wave");
        assert_eq!(wave_sizes(&steps(&["5", "100%"]), 3), [3], "a count past the replicas is all of them");
        for replicas in 0..200 {
            let sizes = wave_sizes(&canary, replicas);
            assert_eq!(sizes.iter().sum::<usize>(), replicas, "{replicas}");
            assert!(sizes.iter().all(|s| *s > 0), "{replicas}: {sizes:?}");
            assert!(sizes.first().is_none_or(|first| *first == 1), "{replicas}: {sizes:?}");
        }
    }

    #[test]
    fn steps_that_are_unreadable_shrink_or_stop_short_are_refused_naming_the_step() {
        assert_eq!(parse_steps::<&str>(&[]), Err(StepsError::Empty));
        assert_eq!(parse_steps(&["1", "50%"]), Err(StepsError::NotAll));
        assert_eq!(parse_steps(&["3", "2", "100%"]), Err(StepsError::Shrinking { index: 2 }));
        assert_eq!(parse_steps(&["50%", "25%", "100%"]), Err(StepsError::Shrinking { index: 2 }));
        for bad in ["0", "-1", "0%", "101%", "x", "", "1.5", "%", "25 %%"] {
            let error = parse_steps(&[bad, "100%"]).expect_err(bad);
            assert!(matches!(error, StepsError::Unreadable { index: 1, .. }), "{bad}: {error}");
        }
        let long = "9".repeat(4096);
        let error = parse_steps(&[long.as_str(), "100%"]).expect_err("too large").to_string();
        assert!(error.len() < 200, "the step is cut when shown: {error}");
        assert_eq!(
            steps(&[" 1 ", "25%", "100%"]).iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["1", "25%", "100%"]
        );
    }

    #[test]
    fn the_order_is_fixed_for_a_rollout_and_differs_between_rollouts() {
        let uids: Vec<String> = (0..20).map(|i| format!("uid-{i}")).collect();
        let uids: Vec<&str> = uids.iter().map(String::as_str).collect();
        let first = wave_order(&uids, "rollout-a");
        let mut reversed = uids.clone();
        reversed.reverse();
        assert_eq!(wave_order(&reversed, "rollout-a"), first, "the order of the list read does not matter");
        assert_ne!(wave_order(&uids, "rollout-b"), first, "another rollout draws another order");
        let plan = plan(&steps(&["1", "25%", "100%"]), &uids, "rollout-a");
        assert_eq!(plan.iter().map(Vec::len).collect::<Vec<_>>(), [1, 4, 15]);
        let mut all: Vec<&str> = plan.concat();
        all.sort_unstable();
        let mut expected = uids.clone();
        expected.sort_unstable();
        assert_eq!(all, expected, "every replica once");
        assert_eq!(wave_order(&["a", "a", "b"], "s").len(), 2, "a uid listed twice is one replica");
    }
}
