//! Filters for [`Manager::walk`](crate::Manager::walk) and
//! [`IngestManager::list_statuses`](crate::IngestManager::list_statuses).

/// Selects blobs or ingests. The default selects everything.
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
}
