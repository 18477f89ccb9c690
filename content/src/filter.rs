//! Filters for [`Manager::walk`](crate::Manager::walk) and
//! [`IngestManager::list_statuses`](crate::IngestManager::list_statuses).

use std::collections::HashMap;

/// Selects blobs or ingests. The default selects everything.
///
/// Build one with [`Filter::all`] and the `with_*` methods; a store implementation asks
/// [`matches_labels`](Filter::matches_labels) or [`matches_ref`](Filter::matches_ref) so
/// that every store reads a filter the same way.
///
/// ```
/// use std::collections::HashMap;
///
/// use dist_content::Filter;
///
/// let filter = Filter::all().with_label("team", "web").with_label_key("gc.root");
/// let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
///     pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
/// };
/// assert!(filter.matches_labels(&labels(&[("team", "web"), ("gc.root", "1")])));
/// assert!(!filter.matches_labels(&labels(&[("team", "db"), ("gc.root", "1")])));
/// assert!(!filter.matches_labels(&labels(&[("team", "web")])));
///
/// let pull = Filter::all().with_ref_prefix("pull-1/");
/// assert!(pull.matches_ref("pull-1/config"));
/// assert!(!pull.matches_ref("pull-2/config"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filter {
    /// Only ingests whose ref starts with this prefix (ignored for blobs).
    pub ref_prefix: Option<String>,
    /// Only blobs carrying every one of these labels (`None` value: any value).
    pub labels: Vec<(String, Option<String>)>,
}

impl Filter {
    /// A filter that selects everything.
    pub fn all() -> Self {
        Filter::default()
    }

    /// Selects only ingests whose ref starts with `prefix` (replacing any earlier prefix).
    pub fn with_ref_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.ref_prefix = Some(prefix.into());
        self
    }

    /// Selects only blobs whose label `key` is exactly `value`.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), Some(value.into())));
        self
    }

    /// Selects only blobs that carry label `key`, whatever its value.
    pub fn with_label_key(mut self, key: impl Into<String>) -> Self {
        self.labels.push((key.into(), None));
        self
    }

    /// Whether a blob with these labels is selected: it carries every label the filter
    /// names, with the value given (when one is).
    pub fn matches_labels(&self, labels: &HashMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|(key, want)| match (labels.get(key), want) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
    }

    /// Whether the ingest under `reference` is selected: there is no prefix, or the ref
    /// starts with it.
    pub fn matches_ref(&self, reference: &str) -> bool {
        self.ref_prefix
            .as_deref()
            .is_none_or(|prefix| reference.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filter_selects_every_blob_and_ingest() {
        let filter = Filter::all();
        assert!(filter.matches_labels(&HashMap::new()));
        assert!(filter.matches_ref(""));
        assert!(filter.matches_ref("any/ref"));
    }

    #[test]
    fn later_ref_prefix_replaces_earlier_one() {
        let filter = Filter::all().with_ref_prefix("a/").with_ref_prefix("b/");
        assert!(filter.matches_ref("b/x"));
        assert!(!filter.matches_ref("a/x"));
    }

    #[test]
    fn label_filters_ignore_extra_labels_on_the_blob() {
        let filter = Filter::all().with_label("k", "v");
        let labels = HashMap::from([
            ("k".to_owned(), "v".to_owned()),
            ("other".to_owned(), "x".to_owned()),
        ]);
        assert!(filter.matches_labels(&labels));
        assert!(!filter.matches_labels(&HashMap::from([("k".to_owned(), "w".to_owned())])));
    }
}
