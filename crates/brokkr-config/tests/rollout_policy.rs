//! The staged rollout's policy comes from the file or the environment only: a ConfigMap that changes any of its
//! keys is refused with the key named, one that repeats them is not, and a policy no rollout can follow stops the
//! start naming the key.

use brokkr_config::{ConfigLayers, layers::LayerText};

fn configmap(text: &str) -> LayerText {
    LayerText { origin: "ConfigMap".into(), text: text.into() }
}

#[test]
fn the_configmap_cannot_change_the_rollout_policy_and_the_error_names_the_key() {
    let file = LayerText { origin: "file".into(), text: "[rollout]\nenabled = true\nbake = \"30s\"".into() };
    let layers = ConfigLayers::new().with_file_text(&file).expect("the file sets it");
    let changes = [
        ("[rollout]\nenabled = false", "rollout.enabled"),
        ("[rollout]\nbake = \"1s\"", "rollout.bake"),
        ("[rollout]\nsteps = [\"100%\"]", "rollout.steps"),
        ("[rollout]\nprogress_deadline = \"1h\"", "rollout.progress_deadline"),
        ("[rollout]\nmax_error_ratio = 1", "rollout.max_error_ratio"),
        ("[rollout]\nmin_requests = 1000000", "rollout.min_requests"),
    ];
    for (document, key) in changes {
        let error = layers.build(Some(&configmap(document))).expect_err(document);
        assert_eq!(error.key(), Some(key), "{document}: {error}");
        assert!(error.to_string().contains("cannot change it"), "{error}");
    }
    layers.build(Some(&configmap("[rollout]\nenabled = true\nbake = \"30s\""))).expect("repeating the policy");
    let from_env = ConfigLayers::new()
        .with_env(vec![("BROKKR__ROLLOUT__STEPS".into(), "[\"1\",\"100%\"]".into())])
        .expect("the environment sets it");
    let built = from_env.build(None).expect("valid");
    assert_eq!(built.settings.rollout.steps, ["1", "100%"]);
    let error = ConfigLayers::new()
        .with_file_text(&LayerText { origin: "file".into(), text: "[rollout]\nsteps = [\"50%\", \"1\"]".into() })
        .expect_err("the last step is not 100%");
    assert_eq!(error.key(), Some("rollout.steps"), "{error}");
}
