//! The local control plane starts, enforces RBAC on a restricted identity, audits requests by user, and
//! survives an API server restart with its data (etcd keeps running).

use brokkr_testenv::ControlPlane;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_api_server_enforces_rbac_audits_and_restarts() {
    let mut plane = ControlPlane::start().await.expect("control plane starts");
    let admin = plane.admin_client().await.expect("admin client");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns = Namespace {
        metadata: ObjectMeta { name: Some("smoke".into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &ns).await.expect("admin creates a namespace");

    let restricted =
        ControlPlane::client_for(&plane.user_kubeconfig("nobody").expect("kubeconfig")).await.expect("client");
    let denied = Api::<ConfigMap>::namespaced(restricted, "smoke").list(&Default::default()).await;
    assert!(matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403), "{denied:?}");
    assert!(!plane.requests_by("nobody").is_empty(), "the denied request is in the audit log");

    plane.stop_apiserver();
    plane.start_apiserver().await.expect("restarts");
    let admin = plane.admin_client().await.expect("admin client");
    Api::<Namespace>::all(admin).get("smoke").await.expect("data survived the restart");
}
