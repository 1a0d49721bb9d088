//! `notify:` of `hoist.yaml` (spec section 10): the webhooks that hear about
//! task outcomes, halted rollouts and drift, and the checks of their meaning
//! that the schema cannot make.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::document::LazyPositions;
use crate::diag::Diagnostic;

/// `notify:` of `hoist.yaml`. Default: no webhook.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Where events are POSTed.
    pub webhooks: Vec<Webhook>,
}

/// One webhook receiver.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The events it is sent.
    pub events: Vec<Event>,
    /// The environment variable holding the signing secret.
    pub secret_env: String,
}

impl Webhook {
    /// The receiver for logs: scheme and host only, since a path or query
    /// may carry a token (many chat webhooks do).
    pub fn shown(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("?", &self.url));
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        format!("{scheme}://{host}")
    }
}

/// What a webhook can be told about (fixed names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// A task failed (and was rolled back).
    TaskFailed,
    /// A task ended well (its result may be `warning`).
    TaskSucceeded,
    /// A rollout exceeded its failure budget and stopped.
    RolloutHalted,
    /// `hoist watch` found a site changed behind hoist's back.
    Drift,
}

impl Event {
    /// The fixed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::TaskFailed => "task-failed",
            Event::TaskSucceeded => "task-succeeded",
            Event::RolloutHalted => "rollout-halted",
            Event::Drift => "drift",
        }
    }
}

/// Deserializes a value where `null` means the default.
pub(super) fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Checks `notify:` in the raw (schema-valid) settings document: a secret
/// written inline, as a `secret:` key or as credentials in the URL, is an
/// error. Runs before decoding so that the value itself is never echoed.
pub(super) fn check_inline_secrets(
    value: &Value,
    positions: &LazyPositions,
    shown: &Path,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(hooks) = value.pointer("/notify/webhooks").and_then(Value::as_array) else {
        return;
    };
    for (i, h) in hooks.iter().enumerate() {
        if h.get("secret").is_some() {
            let ptr = format!("/notify/webhooks/{i}/secret");
            diags.push(Diagnostic::at(
                shown,
                positions.key(&ptr).or(Some((1, 1))),
                "a secret written inline: put it in an environment variable and name it with `secret_env: NAME`",
            ));
        }
        if let Some(url) = h.get("url").and_then(Value::as_str) {
            let authority = url
                .split_once("://")
                .map(|(_, r)| r.split(['/', '?', '#']).next().unwrap_or(""))
                .unwrap_or("");
            if authority.contains('@') {
                let ptr = format!("/notify/webhooks/{i}/url");
                diags.push(Diagnostic::at(
                    shown,
                    positions.value(&ptr).or(Some((1, 1))),
                    "a secret written inline: credentials in a webhook URL; sign with `secret_env: NAME` instead",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_url_hides_path_and_query() {
        let w = Webhook {
            url: "https://hooks.example.org/T000/B000/XXXX?token=1".into(),
            events: vec![Event::Drift],
            secret_env: "S".into(),
        };
        assert_eq!(w.shown(), "https://hooks.example.org");
    }

    #[test]
    fn event_names_round_trip() {
        for e in [
            Event::TaskFailed,
            Event::TaskSucceeded,
            Event::RolloutHalted,
            Event::Drift,
        ] {
            let v: Event = serde_json::from_value(Value::from(e.as_str())).unwrap();
            assert_eq!(v, e);
            assert_eq!(serde_json::to_value(e).unwrap(), Value::from(e.as_str()));
        }
    }
}
