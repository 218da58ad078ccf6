//! api-versions of the resource types the emulator serves (managedClusters, containerGroups).
//! ARM refuses a well-formed version the type does not serve with 400 `NoRegisteredProviderFound`
//! "No registered resource provider found for location … and API version … for type …" (azure-cli
//! #30444 and #30847 for containerGroups, Azure/kubectl-aks PR #48 for managedClusters), and a
//! version it cannot make sense of with 400 `InvalidApiVersionParameter` "The api-version '…' is
//! invalid. The supported versions are '…'." (its own answer, e.g. azure-cli #22684).

use axum::http::StatusCode;
use axum::response::Response;

use super::{Ctx, arm_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Microsoft.ContainerService/managedClusters
    Aks,
    /// Microsoft.ContainerInstance/containerGroups
    Aci,
    /// Microsoft.Kubernetes/connectedClusters (any well-formed version is served)
    Arc,
}

impl Provider {
    fn type_name(self) -> &'static str {
        match self {
            Provider::Aks => "managedClusters",
            Provider::Aci => "containerGroups",
            Provider::Arc => "connectedClusters",
        }
    }

    /// Versions this emulator is used with (the operator's, azure-cli 2.91's and the pinned
    /// Python SDKs' defaults), named in refusals when no list is configured.
    fn known(self) -> &'static [&'static str] {
        match self {
            Provider::Aks => &["2025-10-01", "2026-06-01", "2026-08-01"],
            Provider::Aci => &["2023-05-01", "2024-05-01-preview", "2025-09-01"],
            Provider::Arc => &["2024-01-01"],
        }
    }
}

/// `YYYY-MM-DD` with an optional `-suffix` (`-preview`, `-privatepreview`, …), as ARM writes them.
fn well_formed(v: &str) -> bool {
    let (date, suffix) = match v.get(10..) {
        Some(rest) => (&v[..10], rest),
        None => return false,
    };
    let suffix_ok = suffix.is_empty()
        || suffix
            .strip_prefix('-')
            .is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()));
    let parts: Vec<&str> = date.split('-').collect();
    let number = |s: &str, len: usize| -> Option<u32> {
        (s.len() == len && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    suffix_ok
        && parts.len() == 3
        && number(parts[0], 4).is_some()
        && number(parts[1], 2).is_some_and(|m| (1..=12).contains(&m))
        && number(parts[2], 2).is_some_and(|d| (1..=31).contains(&d))
}

/// Checks the request's api-version for `provider`; `location` is the resource group's.
pub fn check(ctx: &Ctx, provider: Provider, location: &str) -> Result<(), Response> {
    let v = &ctx.api_version;
    let configured: &[String] = match provider {
        Provider::Aks => &ctx.state.settings.aks_api_versions,
        Provider::Aci => &ctx.state.settings.aci_api_versions,
        Provider::Arc => &[],
    };
    let listed: Vec<&str> = if configured.is_empty() {
        provider.known().to_vec()
    } else {
        configured.iter().map(String::as_str).collect()
    };
    if !well_formed(v) {
        return Err(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid. The supported versions are '{}'.",
                listed.join(",")
            ),
        ));
    }
    if configured.is_empty() || configured.iter().any(|c| c.eq_ignore_ascii_case(v)) {
        return Ok(());
    }
    Err(arm_error(
        StatusCode::BAD_REQUEST,
        "NoRegisteredProviderFound",
        format!(
            "No registered resource provider found for location '{location}' and API version '{v}' for type '{}'. The supported api-versions are '{}'. The supported locations are '{location}'.",
            provider.type_name(),
            listed.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_syntax() {
        for ok in ["2025-10-01", "2024-05-01-preview", "2022-08-03-PREVIEW"] {
            assert!(well_formed(ok), "{ok}");
        }
        for bad in [
            "",
            "latest",
            "2025-10",
            "2025-13-01",
            "2025-10-32",
            "2025-10-01-",
            "2025-10-01x",
            "25-10-01",
            "2025-10-01-pre view",
            "２０２５-10-01",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
