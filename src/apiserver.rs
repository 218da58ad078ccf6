//! The operator's connection to the Kubernetes API server: kube's own layers (base URI,
//! authentication with token refresh, extra headers, timeouts) over a connection that speaks
//! HTTP/2 when the API server offers it, as client-go does.
//!
//! kube's default client speaks HTTP/1.1 only, so every request in flight needs a connection of its
//! own: a burst of reconciles (a GitOps apply of many resources) opens dozens of TLS connections,
//! each a handshake and certificate verification, and keeps them open. Over HTTP/2 all requests and
//! watches share one connection.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::{Client, Config};
use tower::{BoxError, ServiceBuilder};

/// A client for `config`, HTTP/2 when the server negotiates it (ALPN), HTTP/1.1 otherwise. A
/// kubeconfig that names a proxy or a TLS server name gets kube's own client, which handles both.
pub fn client(config: Config) -> Result<Client, kube::Error> {
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return Client::try_from(config);
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    // One connection carries every request: no Nagle delay on small frames (a request's HEADERS
    // and DATA go out as separate writes).
    tcp.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A TLS listener that offers h2 and http/1.1 and reports what the client chose.
    async fn alpn_listener() -> (
        String,
        Vec<u8>,
        tokio::sync::oneshot::Receiver<Option<Vec<u8>>>,
    ) {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (chosen, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = tokio_rustls::TlsAcceptor::from(Arc::new(tls))
                .accept(tcp)
                .await
                .unwrap();
            let _ = chosen.send(stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
        });
        (url, der, rx)
    }

    #[tokio::test]
    async fn requests_go_over_http2_when_the_server_offers_it() {
        let (url, ca, chosen) = alpn_listener().await;
        let mut config = Config::new(url.parse().unwrap());
        config.root_cert = Some(vec![ca]);
        let client = client(config).unwrap();
        // The listener only shakes hands; the request itself fails afterwards.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.apiserver_version(),
        )
        .await;
        let chosen = chosen.await.expect("the client connected");
        assert_eq!(chosen.as_deref(), Some(&b"h2"[..]));
    }
}
