//! Following a kind as the driver's watch sees it: every object, with the moment it was seen.

use futures::TryStreamExt;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::Resource;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::task::JoinHandle;

use crate::scenario::now_secs;

/// Calls `on_object` with every object of `api` (the initial list included) and when it was
/// seen, until the returned task is aborted or the watch ends.
pub fn follow<K>(api: Api<K>, mut on_object: impl FnMut(K, f64) + Send + 'static) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let stream = watcher(api, watcher::Config::default());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Ok(Some(event)) = stream.try_next().await {
            if let watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) = event {
                on_object(obj, now_secs());
            }
        }
    })
}
