//! Property tests of the three parsers that read what others send us: ARM resource IDs, the
//! kubeconfigs ARM returns, and the LRO polling headers. A few dozen cases per property in the
//! unit run; `make chaos` runs thousands (`PROPTEST_CASES`).

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::azure::lro::{
    MAX_RETRY_AFTER, PollLink, instant_after, parse_retry_after_value, poll_link, retry_after,
};
use crate::azure::resource_id::{
    AKS_CLUSTER_ID_PATTERN, AksClusterId, ConnectedClusterId, ContainerGroupId,
};
use crate::kubeconfig::ParsedKubeconfig;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn flip_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn guid() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

fn resource_group() -> impl Strategy<Value = String> {
    "[-a-zA-Z0-9_.()]{0,89}[-a-zA-Z0-9_()]"
}

fn cluster_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9]", "[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]"]
}

/// Pieces a broken ID is made of: the right keywords, separators and the odd wrong byte.
fn id_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("subscriptions".to_string()),
        Just("resourceGroups".to_string()),
        Just("providers".to_string()),
        Just("Microsoft.ContainerService".to_string()),
        Just("managedClusters".to_string()),
        guid(),
        "[-a-zA-Z0-9_.() ]{0,6}",
        "\\PC{0,3}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_aks_ids_round_trip(sub in guid(), rg in resource_group(), name in cluster_name(), mask in any::<u64>()) {
        let keywords = flip_case("subscriptions|resourceGroups|providers|Microsoft.ContainerService|managedClusters", mask);
        let k: Vec<&str> = keywords.split('|').collect();
        let id = format!("/{}/{sub}/{}/{rg}/{}/{}/{}/{name}", k[0], k[1], k[2], k[3], k[4]);
        let parsed: AksClusterId = id.parse().map_err(|e| TestCaseError::fail(format!("{id}: {e}")))?;
        prop_assert_eq!(&parsed.scope.subscription_id, &sub);
        prop_assert_eq!(&parsed.scope.resource_group, &rg);
        prop_assert_eq!(&parsed.name, &name);
        let again: AksClusterId = parsed.to_string().parse().map_err(|e| TestCaseError::fail(format!("{parsed}: {e}")))?;
        prop_assert_eq!(again, parsed);
    }

    #[test]
    fn the_parser_and_the_crd_pattern_agree(id in id_like()) {
        static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let pattern = PATTERN.get_or_init(|| regex::Regex::new(AKS_CLUSTER_ID_PATTERN).expect("pattern"));
        let parsed = id.parse::<AksClusterId>();
        prop_assert_eq!(parsed.is_ok(), pattern.is_match(&id), "{:?}: parser {:?}", id, parsed);
        // Any string: never a panic, and an accepted ID prints as one that parses the same.
        if let Ok(p) = parsed {
            prop_assert_eq!(p.to_string().parse::<AksClusterId>().ok(), Some(p));
        }
        let _ = id.parse::<ContainerGroupId>();
        let _ = id.parse::<ConnectedClusterId>();
    }

    #[test]
    fn any_text_is_a_resource_id_or_an_error(id in "\\PC{0,300}") {
        let _ = id.parse::<AksClusterId>();
        let _ = id.parse::<ContainerGroupId>();
        let _ = id.parse::<ConnectedClusterId>();
    }

    #[test]
    fn any_bytes_are_a_kubeconfig_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = ParsedKubeconfig::from_yaml("clusterUser", &bytes);
    }

    #[test]
    fn any_text_is_base64_kubeconfig_or_an_error(text in "\\PC{0,600}") {
        let _ = ParsedKubeconfig::from_base64("clusterUser", &text);
        let _ = ParsedKubeconfig::from_yaml("clusterUser", text.as_bytes());
    }

    #[test]
    fn generated_kubeconfigs_parse(
        cluster in "[a-z][-a-z0-9]{0,20}",
        user in "[a-z][-a-z0-9]{0,20}",
        host in "[a-z][a-z0-9]{0,20}\\.example\\.com",
        port in 1u16..,
        token in "[A-Za-z0-9._-]{1,64}",
        json_style in any::<bool>(),
    ) {
        // Names are quoted as Go's YAML encoder (AKS) quotes them: an unquoted `n`, `y`, `on` or
        // `no` reads as a YAML 1.1 boolean here, which kubectl would still take as a name.
        let server = format!("https://{host}:{port}");
        let yaml = if json_style {
            format!(r#"{{"apiVersion":"v1","kind":"Config","clusters":[{{"name":"{cluster}","cluster":{{"server":"{server}"}}}}],"users":[{{"name":"{user}","user":{{"token":"{token}"}}}}],"contexts":[{{"name":"ctx","context":{{"cluster":"{cluster}","user":"{user}"}}}}],"current-context":"ctx"}}"#)
        } else {
            format!("apiVersion: v1\nkind: Config\nclusters:\n- name: \"{cluster}\"\n  cluster:\n    server: {server}\nusers:\n- name: \"{user}\"\n  user:\n    token: \"{token}\"\ncontexts:\n- name: ctx\n  context:\n    cluster: \"{cluster}\"\n    user: \"{user}\"\ncurrent-context: ctx\n")
        };
        let parsed = ParsedKubeconfig::from_yaml("clusterUser", yaml.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{yaml}\n{e}")))?;
        prop_assert_eq!(parsed.server(), server.as_str());
        prop_assert_eq!(parsed.user_name(), user.as_str());
    }

    #[test]
    fn any_header_values_are_links_or_errors(
        location in prop::collection::vec(any::<u8>(), 0..300),
        async_op in prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
        retry in prop::collection::vec(any::<u8>(), 0..40),
        retry_ms in prop::option::of("[-0-9a-z.]{0,25}"),
    ) {
        let base = Url::parse("https://management.azure.com/subscriptions/s/op?api-version=1").expect("base");
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &[u8]| {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        put("location", &location);
        if let Some(a) = &async_op {
            put("azure-asyncoperation", a);
        }
        put("retry-after", &retry);
        if let Some(ms) = &retry_ms {
            put("retry-after-ms", ms.as_bytes());
        }
        let _ = poll_link(&headers, &base);
        let _ = retry_after(&headers, SystemTime::now());
    }

    #[test]
    fn https_links_are_read_back_and_async_operation_wins(
        host in "[a-z][a-z0-9]{0,15}\\.example\\.com",
        path in "(/[a-zA-Z0-9_.~-]{1,12}){1,5}",
        both in any::<bool>(),
    ) {
        let base = Url::parse("https://management.azure.com/x").expect("base");
        let url = format!("https://{host}{path}?api-version=2025-10-01");
        let mut headers = HeaderMap::new();
        headers.insert("location", HeaderValue::from_str(&format!("{url}&l=1")).expect("value"));
        if both {
            headers.insert("azure-asyncoperation", HeaderValue::from_str(&url).expect("value"));
        }
        let link = poll_link(&headers, &base).map_err(TestCaseError::fail)?;
        let want = if both {
            PollLink::AsyncOperation(Url::parse(&url).expect("url"))
        } else {
            PollLink::Location(Url::parse(&format!("{url}&l=1")).expect("url"))
        };
        prop_assert_eq!(link, Some(want));
    }

    #[test]
    fn retry_after_seconds_are_exact_up_to_the_cap(secs in any::<u64>(), pad in "[ \t]{0,3}") {
        let value = format!("{pad}{secs}{pad}");
        let want = Duration::from_secs(secs).min(MAX_RETRY_AFTER);
        prop_assert_eq!(parse_retry_after_value(&value, SystemTime::now()), Ok(want));
    }

    #[test]
    fn any_retry_after_text_is_a_delay_or_an_error(value in "\\PC{0,64}") {
        let _ = parse_retry_after_value(&value, SystemTime::now());
    }

    /// No delay header, however absurd, gives a wait past the cap, nor one that overflows the
    /// clock when a caller adds it to `now` (the 429, retry and polling paths all do).
    #[test]
    fn no_delay_header_overflows_the_clock(
        name in prop_oneof![Just("retry-after"), Just("retry-after-ms"), Just("x-ms-retry-after-ms")],
        value in prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            "[0-9]{18,40}",
            "\\PC{0,40}",
        ],
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
        if let Ok(Some(delay)) = retry_after(&headers, SystemTime::now()) {
            prop_assert!(delay <= MAX_RETRY_AFTER);
            let now = tokio::time::Instant::now();
            prop_assert!(instant_after(now, delay) >= now);
        }
    }
}
