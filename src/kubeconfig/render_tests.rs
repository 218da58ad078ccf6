//! Tests of Secret rendering per format and content hashing.

use super::*;
use crate::kubeconfig::testdata::{
    TOKEN, aad_auth_provider, aad_exec, admin_cert, admin_token, basic_auth, ctx, parse,
    passthrough, spec, swapped_exec, text,
};

/// Name, spec, expected type, data keys and labels besides managed-by.
type FormatCase = (
    &'static str,
    SecretSpec,
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

#[test]
fn type_keys_and_labels_per_format() {
    let parsed = parse(&admin_token(TOKEN));
    let custom_key = SecretSpec {
        key: Some("config.yaml".into()),
        ..spec(SecretFormat::Kubeconfig)
    };
    let cases: [FormatCase; 5] = [
        (
            "kubeconfig",
            spec(SecretFormat::Kubeconfig),
            "Opaque",
            &["kubeconfig"],
            &[],
        ),
        (
            "kubeconfig, own key",
            custom_key,
            "Opaque",
            &["config.yaml"],
            &[],
        ),
        ("flux", spec(SecretFormat::Flux), "Opaque", &["value"], &[]),
        (
            "cluster api",
            spec(SecretFormat::ClusterApi),
            "cluster.x-k8s.io/secret",
            &["value"],
            &[("cluster.x-k8s.io/cluster-name", "aks-prod")],
        ),
        (
            "argo cd",
            spec(SecretFormat::ArgoCd),
            "Opaque",
            &["config", "name", "server"],
            &[("argocd.argoproj.io/secret-type", "cluster")],
        ),
    ];
    for (name, spec, type_, keys, labels) in cases {
        let secret = render(&parsed, &spec, &passthrough()).unwrap();
        assert_eq!(secret.type_, type_, "{name}");
        assert_eq!(
            secret.data.keys().map(String::as_str).collect::<Vec<_>>(),
            keys,
            "{name}"
        );
        let mut want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        assert_eq!(secret.labels, want, "{name}");
    }
}

#[test]
fn kubeconfig_output_reads_back_the_same() {
    for yaml in [
        aad_exec(),
        admin_cert(2030, 1, 1),
        aad_auth_provider(),
        basic_auth(),
    ] {
        let parsed = parse(&yaml);
        let secret = render(&parsed, &spec(SecretFormat::Kubeconfig), &passthrough()).unwrap();
        let again = parse(&text(&secret, "kubeconfig"));
        assert_eq!(again.config(), parsed.config());
    }
    let flux = render(&swapped_exec(), &spec(SecretFormat::Flux), &passthrough()).unwrap();
    let out = text(&flux, "value");
    assert!(
        !out.contains("exec:") && !out.contains("kubelogin"),
        "{out}"
    );
    assert!(out.contains(&format!("token: {TOKEN}")), "{out}");
    assert!(out.contains("current-context: aks-1"), "{out}");
    // Plain scalars: no folded/literal blocks that some readers handle differently.
    assert!(!out.contains(": >") && !out.contains(": |"), "{out}");
}

#[test]
fn cluster_api_name_falls_back_to_the_kubeconfig() {
    let parsed = parse(&admin_token(TOKEN));
    let cases: [(Option<&str>, Result<&str, &str>); 4] = [
        (Some("aks-prod"), Ok("aks-prod")),
        (None, Ok("aks-1")),
        (Some("not a label!"), Err("invalid_cluster_name")),
        (Some(&"x".repeat(64)), Err("invalid_cluster_name")),
    ];
    for (arm_name, want) in cases {
        let got = render(
            &parsed,
            &spec(SecretFormat::ClusterApi),
            &ctx(Authentication::Passthrough, arm_name),
        );
        match want {
            Ok(label) => assert_eq!(got.unwrap().labels[CLUSTER_API_CLUSTER_NAME_LABEL], label),
            Err(metric) => assert_eq!(got.unwrap_err().metric_label(), metric, "{arm_name:?}"),
        }
    }
}

#[test]
fn plugins_the_consumer_cannot_run_are_rejected() {
    use Authentication::{Passthrough, Token};
    use SecretFormat::{ArgoCd, ClusterApi, Flux, Kubeconfig};
    let exec = parse(&aad_exec());
    let legacy = parse(&aad_auth_provider());
    let swapped = swapped_exec();
    let cases: [(
        &str,
        &ParsedKubeconfig,
        SecretFormat,
        Authentication,
        Option<&str>,
    ); 11] = [
        (
            "exec, flux, passthrough",
            &exec,
            Flux,
            Passthrough,
            Some("set spec.authentication: Token"),
        ),
        (
            "exec, flux, token but not swapped",
            &exec,
            Flux,
            Token,
            Some("did not happen"),
        ),
        ("exec, flux, swapped", &swapped, Flux, Token, None),
        (
            "auth-provider, flux",
            &legacy,
            Flux,
            Passthrough,
            Some("auth-provider"),
        ),
        (
            "exec, kubeconfig, passthrough",
            &exec,
            Kubeconfig,
            Passthrough,
            None,
        ),
        (
            "exec, kubeconfig, token but not swapped",
            &exec,
            Kubeconfig,
            Token,
            Some("did not happen"),
        ),
        (
            "exec, cluster api, passthrough",
            &exec,
            ClusterApi,
            Passthrough,
            None,
        ),
        (
            "exec, argo cd, passthrough",
            &exec,
            ArgoCd,
            Passthrough,
            None,
        ),
        (
            "auth-provider, argo cd",
            &legacy,
            ArgoCd,
            Passthrough,
            Some("auth-provider"),
        ),
        (
            "auth-provider, kubeconfig",
            &legacy,
            Kubeconfig,
            Passthrough,
            None,
        ),
        ("swapped, argo cd", &swapped, ArgoCd, Token, None),
    ];
    for (name, parsed, format, authentication, want_error) in cases {
        let got = render(parsed, &spec(format), &ctx(authentication, None));
        match want_error {
            None => assert!(got.is_ok(), "{name}: {got:?}"),
            Some(text) => {
                let err = got.expect_err(name);
                assert!(
                    matches!(err, KubeconfigError::ExecUserUnsupported { .. }),
                    "{name}: {err:?}"
                );
                assert_eq!(err.reason(), "InvalidSpec", "{name}");
                assert!(err.to_string().contains(text), "{name}: {err}");
            }
        }
    }
    let flux = render(&exec, &spec(Flux), &passthrough())
        .unwrap_err()
        .to_string();
    assert!(
        flux.contains("Flux") && flux.contains("kubelogin"),
        "{flux}"
    );
}

#[test]
fn file_paths_are_rejected_where_the_secret_must_be_self_contained() {
    let base = admin_token(TOKEN);
    let ca_file = base.replace(
        "certificate-authority-data: ",
        "certificate-authority: /etc/ca.pem\n    x: ",
    );
    let cert_file = base.replace(
        "    token:",
        "    client-certificate: /etc/c.pem\n    token:",
    );
    let key_file = base.replace("    token:", "    client-key: /etc/k.pem\n    token:");
    let token_file = base.replace("    token:", "    tokenFile: /var/run/token\n    token:");
    let cases = [
        (ca_file, "certificate-authority", "cluster aks-1"),
        (cert_file, "client-certificate", "user clusterUser_rg_aks-1"),
        (key_file, "client-key", "user clusterUser_rg_aks-1"),
        (token_file, "tokenFile", "user clusterUser_rg_aks-1"),
    ];
    for (yaml, want_field, want_entry) in cases {
        let parsed = parse(&yaml);
        for format in [
            SecretFormat::Flux,
            SecretFormat::ClusterApi,
            SecretFormat::ArgoCd,
        ] {
            let err = render(&parsed, &spec(format), &passthrough()).unwrap_err();
            assert_eq!(
                err,
                KubeconfigError::NotSelfContained {
                    format,
                    entry: want_entry.into(),
                    field: want_field
                }
            );
            assert_eq!(err.reason(), "InvalidKubeconfig");
        }
        assert!(render(&parsed, &spec(SecretFormat::Kubeconfig), &passthrough()).is_ok());
    }
}

#[test]
fn labels_and_annotations_merge_with_ours_winning() {
    let spec = SecretSpec {
        labels: BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), "someone-else".to_owned()),
            (ARGOCD_SECRET_TYPE_LABEL.to_owned(), "repository".to_owned()),
            ("team".to_owned(), "edge".to_owned()),
        ]),
        annotations: BTreeMap::from([("note".to_owned(), "hello".to_owned())]),
        ..spec(SecretFormat::ArgoCd)
    };
    let secret = render(&parse(&admin_token(TOKEN)), &spec, &passthrough()).unwrap();
    assert_eq!(
        secret.labels,
        BTreeMap::from([
            (ARGOCD_SECRET_TYPE_LABEL.to_owned(), "cluster".to_owned()),
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
            ("team".to_owned(), "edge".to_owned()),
        ])
    );
    assert_eq!(secret.annotations, spec.annotations);
}

#[test]
fn content_hash_is_stable_and_covers_everything() {
    let yaml = admin_cert(2030, 1, 1);
    let render_fresh = |spec: &SecretSpec| render(&parse(&yaml), spec, &passthrough()).unwrap();
    for format in [
        SecretFormat::Kubeconfig,
        SecretFormat::Flux,
        SecretFormat::ClusterApi,
        SecretFormat::ArgoCd,
    ] {
        let (a, b) = (render_fresh(&spec(format)), render_fresh(&spec(format)));
        assert_eq!(a, b, "{format:?}: byte-identical output");
        assert_eq!(content_hash(&a), content_hash(&b), "{format:?}");
    }
    let base = render_fresh(&spec(SecretFormat::Kubeconfig));
    let hash = content_hash(&base);
    assert!(
        hash.starts_with("sha256:") && hash.len() == 7 + 64,
        "{hash}"
    );
    assert!(
        hash[7..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );

    let mut changed = Vec::new();
    let mut other = base.clone();
    other.type_ = "cluster.x-k8s.io/secret".into();
    changed.push(("type", other));
    let mut other = base.clone();
    other
        .data
        .insert("kubeconfig".into(), SecretBytes::new(b"x".to_vec()));
    changed.push(("data value", other));
    let mut other = base.clone();
    let value = other.data.remove("kubeconfig").unwrap();
    other.data.insert("config".into(), value);
    changed.push(("data key", other));
    let mut other = base.clone();
    other.labels.insert("team".into(), "edge".into());
    changed.push(("label", other));
    let mut other = base.clone();
    other.annotations.insert("note".into(), "hi".into());
    changed.push(("annotation", other));
    for (name, other) in changed {
        assert_ne!(content_hash(&other), hash, "{name} must change the hash");
    }
    // Length prefixes: moving bytes between a key and its value changes the hash.
    let kv = |k: &str, v: &[u8]| RenderedSecret {
        type_: "Opaque".into(),
        data: BTreeMap::from([(k.to_owned(), SecretBytes::new(v.to_vec()))]),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    };
    assert_ne!(content_hash(&kv("ab", b"c")), content_hash(&kv("a", b"bc")));
}

#[test]
fn rendered_debug_is_redacted() {
    let secret = render(
        &parse(&admin_token(TOKEN)),
        &spec(SecretFormat::ArgoCd),
        &passthrough(),
    )
    .unwrap();
    let debug = format!("{secret:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(
        debug.contains("<redacted>") && debug.contains(MANAGED_BY_LABEL),
        "{debug}"
    );
}
