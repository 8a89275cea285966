//! The chart's staged rollout without a cluster: with `rollout.enabled` it adds the two kinds, the Lease, the
//! rights, the policy's environment and the two admission policies; without it, none of them.

use brokkr_e2e::chart::{chart_dir, documents_of_kind, helm};

async fn template(home: &std::path::Path, extra: &[&str]) -> brokkr_e2e::chart::Run {
    let chart = chart_dir();
    let mut args = vec!["template", "brokkr-broker", chart.to_str().expect("UTF-8 path"), "-n", "brokkr"];
    args.extend_from_slice(extra);
    helm(home, None, &args).await
}

const ON: &str = "podStatus.enabled=true,rollout.enabled=true";

#[tokio::test]
async fn the_staged_rollout_adds_its_kinds_rights_environment_and_policies_only_when_on() {
    let home = tempfile::tempdir().expect("tempdir");
    let off = template(home.path(), &["--set", "podStatus.enabled=true"]).await.ok("helm template");
    for absent in ["CustomResourceDefinition", "Lease", "ClusterRole"] {
        assert!(documents_of_kind(&off, absent).is_empty(), "{absent} without rollout.enabled");
    }
    assert!(!off.contains("brokkr.io") || !off.contains("configrollouts"), "no rights on the rollout's kinds");
    assert!(!off.contains("BROKKR__ROLLOUT") && !off.contains("POD_UID"), "no rollout environment");
    assert_eq!(documents_of_kind(&off, "ValidatingAdmissionPolicy").len(), 1, "only the Pod guard");

    let on = template(home.path(), &["--set", ON, "--set", "rollout.bake=30s"]).await.ok("helm template");
    let crds = documents_of_kind(&on, "CustomResourceDefinition").concat();
    assert!(crds.contains("name: configrollouts.brokkr.io") && crds.contains("name: configrolloutdocuments.brokkr.io"));
    assert!(crds.contains("status: {}"), "the ConfigRollout's status is a subresource: only the coordinator writes it");
    assert_eq!(documents_of_kind(&on, "Lease").len(), 1);
    let role = documents_of_kind(&on, "Role").concat();
    for rule in ["configrollouts/status", "coordination.k8s.io", "verbs: [list, watch]"] {
        assert!(role.contains(rule), "{rule} in {role}");
    }
    let deployment = documents_of_kind(&on, "Deployment").concat();
    for env in [
        "- name: POD_UID\n              valueFrom:\n                fieldRef:\n                  fieldPath: metadata.uid",
        "- name: BROKKR_ROLLOUT_PODS\n              value: \"app.kubernetes.io/name=brokkr-broker,app.kubernetes.io/instance=brokkr-broker\"",
        "- name: BROKKR__ROLLOUT__STEPS\n              value: \"[\\\"1\\\",\\\"25%\\\",\\\"100%\\\"]\"",
        "- name: BROKKR__ROLLOUT__BAKE\n              value: \"30s\"",
    ] {
        assert!(deployment.contains(env), "{env} in {deployment}");
    }
    let policies = documents_of_kind(&on, "ValidatingAdmissionPolicy").concat();
    assert!(policies.contains("-rollout-verdicts") && policies.contains("-rollout-commands"), "{policies}");
    assert!(policies.contains("'config.brokkr.io/verdict': true"), "the Pod guard lets the broker write its verdict");
    let view = documents_of_kind(&on, "ClusterRole").concat();
    assert!(view.contains("aggregate-to-view: \"true\"") && !view.contains("configrolloutdocuments"), "{view}");

    for (set, named) in [
        ("rollout.enabled=true", "needs podStatus.enabled"),
        ("rollout.enabled=true,podStatus.enabled=true,reload.source=file", "reload.source=file"),
        ("rollout.enabled=true,podStatus.enabled=true,rollout.steps={50%}", "steps"),
        ("rollout.enabled=true,podStatus.enabled=true,rollout.maxErrorRatio=2", "maxErrorRatio"),
    ] {
        let refused = template(home.path(), &["--set", set]).await;
        assert_ne!(refused.code, Some(0), "{set}");
        assert!(refused.stderr.contains(named), "{set}: {}", refused.stderr);
    }
}
