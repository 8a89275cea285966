//! The texts a `ConfigRolloutDocument` keeps: every text the stored status or the next one names, so that a status
//! write that fails (a 409 after an operator's command, a timeout) never leaves the stored status naming a text the
//! document no longer holds.

use brokkr_reload::{
    admission::DocumentHash,
    rollout_coordinator::kept_texts,
    rollout_objects::{DocumentSpec, KeptText},
    rollout_status::{Phase, RolloutStatus, VersionRef},
};

fn kept(text: &str) -> KeptText {
    KeptText { hash: DocumentHash::of(text).as_str().into(), resource_version: String::new(), text: text.into() }
}

fn version(text: &str) -> Option<VersionRef> {
    Some(VersionRef { hash: DocumentHash::of(text).as_str().into(), resource_version: String::new() })
}

fn status(phase: Phase, last_good: &str, target: &str) -> RolloutStatus {
    RolloutStatus { phase, last_good: version(last_good), target: version(target), ..RolloutStatus::default() }
}

fn texts(kept: &[KeptText]) -> Vec<&str> {
    kept.iter().map(|k| k.text.as_str()).collect()
}

#[test]
fn completing_keeps_the_old_last_good_text_until_the_status_that_drops_it_is_stored() {
    // Found by review: the completion overwrote the one last-good slot before its status write, which then failed;
    // an abort next left the status naming a text no longer kept, and no replica could roll back.
    let document = DocumentSpec { texts: vec![kept("t0"), kept("t1")] };
    let stored = status(Phase::Progressing, "t0", "t1");
    let complete = status(Phase::Complete, "t1", "t1");
    let written = kept_texts(&document, &stored, &complete, None).expect("both at hand");
    assert_eq!(texts(&written), ["t0", "t1"], "t0 stays while the stored status names it");
    // The write of `complete` failed; the next step aborts instead: t0 is still kept.
    let aborted = status(Phase::RolledBack, "t0", "t1");
    let written = kept_texts(&DocumentSpec { texts: written }, &stored, &aborted, None).expect("at hand");
    assert!(written.iter().any(|k| k.text == "t0"));
    // Once `complete` is stored, the next write drops t0.
    let next = status(Phase::Progressing, "t1", "t2");
    let written = kept_texts(&DocumentSpec { texts: written }, &complete, &next, Some(kept("t2"))).expect("at hand");
    assert_eq!(texts(&written), ["t1", "t2"]);
}

#[test]
fn a_superseding_target_is_kept_beside_the_one_in_flight_and_a_missing_text_writes_nothing() {
    let document = DocumentSpec { texts: vec![kept("a"), kept("b")] };
    let stored = status(Phase::Progressing, "a", "b");
    let superseding = status(Phase::Progressing, "a", "c");
    let written = kept_texts(&document, &stored, &superseding, Some(kept("c"))).expect("c from the ConfigMap");
    assert_eq!(texts(&written), ["a", "b", "c"]);
    assert_eq!(kept_texts(&document, &stored, &superseding, None), None, "c is nowhere: the status waits");
    let forged = DocumentSpec { texts: vec![KeptText { text: "edited by hand".into(), ..kept("a") }, kept("b")] };
    assert_eq!(kept_texts(&forged, &stored, &stored, None), None, "a text that does not match its hash is no text");
}
