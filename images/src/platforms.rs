//! Platforms (`os/arch[/variant]`): parsing, normalising, the host default, and the
//! [`Matcher`] that decides which manifests of an index suit a platform and in what order.
//!
//! Platforms are `oci_spec::image::Platform` values. Normalising follows containerd's
//! table: `x86_64` is `amd64`, `aarch64` is `arm64` whose default variant is `v8`, `arm`
//! defaults to `v7`, `armhf` is `arm/v7` and `armel` is `arm/v6`.

use oci_spec::image::{Arch, Os, Platform};

use crate::{Error, Result};

/// `Arch::from`, except for `armbe`, which oci-spec 0.10 maps to `arm64be`.
fn arch_from(arch: &str) -> Arch {
    match arch {
        "armbe" => Arch::Other(arch.to_owned()),
        _ => Arch::from(arch),
    }
}

fn platform(os: &str, arch: &str, variant: Option<String>) -> Platform {
    let mut p = Platform::default();
    p.set_os(Os::from(os));
    p.set_architecture(arch_from(arch));
    p.set_variant(variant);
    p
}

fn normalize_os(os: &str) -> String {
    match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".into(),
        other => other.into(),
    }
}

/// Normalises an architecture and variant pair, as containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(str::to_ascii_lowercase)
        .filter(|v| !v.is_empty());
    let v = |s: &str| Some(s.to_owned());
    match (arch.as_str(), variant.as_deref()) {
        ("i386" | "i686" | "x86" | "386", _) => ("386".into(), None),
        ("x86_64" | "x86-64" | "amd64", None | Some("v1")) => ("amd64".into(), None),
        ("x86_64" | "x86-64" | "amd64", Some(var)) => ("amd64".into(), v(var)),
        ("aarch64" | "arm64", None | Some("8" | "v8" | "v8.0")) => ("arm64".into(), v("v8")),
        ("aarch64" | "arm64", Some(var)) => ("arm64".into(), v(var)),
        ("armhf", _) => ("arm".into(), v("v7")),
        ("armel", _) => ("arm".into(), v("v6")),
        ("arm" | "armv7l" | "armv7", None | Some("7" | "v7")) => ("arm".into(), v("v7")),
        ("arm", Some(n @ ("5" | "6" | "8"))) => ("arm".into(), Some(format!("v{n}"))),
        ("armv6l" | "armv6", _) => ("arm".into(), v("v6")),
        ("armv5l" | "armv5", _) => ("arm".into(), v("v5")),
        (a, var) => (a.to_owned(), var.map(str::to_owned)),
    }
}

/// The canonical form of `p`: lower-case, `x86_64` -> `amd64`, `aarch64` -> `arm64/v8`,
/// `arm` -> `arm/v7`, and so on. Other fields are kept.
pub fn normalize(p: &Platform) -> Platform {
    let mut out = p.clone();
    let (arch, variant) = normalize_arch(&p.architecture().to_string(), p.variant().as_deref());
    out.set_os(Os::from(normalize_os(&p.os().to_string()).as_str()));
    out.set_architecture(arch_from(&arch));
    out.set_variant(variant);
    out
}

fn is_known_os(s: &str) -> bool {
    !matches!(Os::from(s), Os::Other(_)) || s == "macos"
}

fn is_known_arch(s: &str) -> bool {
    let (arch, _) = normalize_arch(s, None);
    arch == "armbe" || !matches!(Arch::from(arch.as_str()), Arch::Other(_))
}

/// Parses `os/arch[/variant]` (or a lone os or arch, completed from the host) and
/// normalises it.
pub fn parse(spec: &str) -> Result<Platform> {
    let invalid = |reason: &str| Error::Invalid {
        what: format!("platform {spec:?}"),
        reason: reason.into(),
    };
    let parts: Vec<&str> = spec.split('/').collect();
    let valid = |s: &&str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    if !parts.iter().all(valid) {
        return Err(invalid(
            "each part must be non-empty letters, digits, '_', '-' or '.'",
        ));
    }
    let host = default_platform();
    let p = match parts.as_slice() {
        [one] if is_known_os(&one.to_ascii_lowercase()) => {
            let mut p = platform(one, "", None);
            p.set_architecture(host.architecture().clone());
            p.set_variant(host.variant().clone());
            p
        }
        [one] if is_known_arch(one) => {
            let mut p = platform("", one, None);
            p.set_os(host.os().clone());
            p
        }
        [one] => return Err(invalid(&format!("{one:?} is neither a known os nor arch"))),
        [os, arch] => platform(os, arch, None),
        [os, arch, variant] => platform(os, arch, Some((*variant).to_owned())),
        _ => return Err(invalid("expected os/arch[/variant]")),
    };
    Ok(normalize(&p))
}

/// Formats a platform as `os/arch[/variant]`.
pub fn format(p: &Platform) -> String {
    match p.variant() {
        Some(v) if !v.is_empty() => format!("{}/{}/{v}", p.os(), p.architecture()),
        _ => format!("{}/{}", p.os(), p.architecture()),
    }
}

/// The platform this program runs on, normalised (32-bit ARM is assumed to be `v7`).
pub fn default_platform() -> Platform {
    let (arch, variant) = normalize_arch(std::env::consts::ARCH, None);
    let os = normalize_os(std::env::consts::OS);
    platform(&os, &arch, variant)
}

/// Decides which platforms are acceptable and which are preferred.
///
/// Implement it to pick manifests by other rules; [`PlatformMatcher`] is the usual one.
/// This one accepts only the OS/architecture pairs it lists, in order of preference, with
/// any variant:
///
/// ```
/// use dist_images::Matcher;
/// use dist_images::platforms::{self, normalize};
/// use oci_spec::image::Platform;
///
/// struct Preferred(Vec<&'static str>);
///
/// impl Matcher for Preferred {
///     fn rank(&self, p: &Platform) -> Option<usize> {
///         let p = normalize(p); // so that `aarch64` is `arm64` and `x86_64` is `amd64`
///         let os_arch = format!("{}/{}", p.os(), p.architecture());
///         self.0.iter().position(|want| *want == os_arch)
///     }
/// }
///
/// # fn main() -> dist_images::Result<()> {
/// let m = Preferred(vec!["linux/arm64", "linux/amd64"]);
/// assert_eq!(m.rank(&platforms::parse("linux/aarch64")?), Some(0));
/// assert_eq!(m.rank(&platforms::parse("linux/x86_64")?), Some(1));
/// assert!(!m.matches(&platforms::parse("linux/s390x")?));
///
/// // Picking from what an index offers: the best rank wins.
/// let offered = [
///     platforms::parse("linux/s390x")?,
///     platforms::parse("linux/amd64")?,
///     platforms::parse("linux/arm64/v8")?,
/// ];
/// let best = offered.iter().filter(|p| m.matches(p)).min_by_key(|p| m.rank(p));
/// assert_eq!(best.map(platforms::format).as_deref(), Some("linux/arm64/v8"));
/// # Ok(())
/// # }
/// ```
pub trait Matcher: Send + Sync {
    /// `None` when `p` is not acceptable; otherwise its preference, lower is better.
    fn rank(&self, p: &Platform) -> Option<usize>;

    /// Whether `p` is acceptable.
    fn matches(&self, p: &Platform) -> bool {
        self.rank(p).is_some()
    }
}

impl<M: Matcher + ?Sized> Matcher for &M {
    fn rank(&self, p: &Platform) -> Option<usize> {
        (**self).rank(p)
    }
}

impl<M: Matcher + ?Sized> Matcher for std::sync::Arc<M> {
    fn rank(&self, p: &Platform) -> Option<usize> {
        (**self).rank(p)
    }
}

/// Accepts every platform, all equally preferred.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyPlatform;

impl Matcher for AnyPlatform {
    fn rank(&self, _: &Platform) -> Option<usize> {
        Some(0)
    }
}

/// Matches one platform and, unless strict, the platforms it can also run: lower variants
/// of the same architecture (`arm/v7` runs `v6` and `v5`; `amd64/v3` runs `v2` and `v1`;
/// `arm64/v8.2` runs `v8.1` and `v8`; `arm64/v9.x` runs `v8.0` to `v8.(x+5)`), 32-bit ARM
/// (`arm/v8` down to `v5`) on `arm64`, and `386` on `amd64`. The exact platform ranks
/// first, then the others in that order (containerd's `platforms.Only`).
#[derive(Debug, Clone)]
pub struct PlatformMatcher {
    /// Acceptable platforms, normalised, best first.
    accepted: Vec<Platform>,
}

/// `vMAJOR[.MINOR]` -> (major, minor).
fn parse_variant(v: &str) -> Option<(u32, u32)> {
    let rest = v.strip_prefix('v')?;
    match rest.split_once('.') {
        Some((maj, min)) => Some((maj.parse().ok()?, min.parse().ok()?)),
        None => Some((rest.parse().ok()?, 0)),
    }
}

impl PlatformMatcher {
    /// Matches `p` and every platform compatible with it, exact first.
    pub fn new(p: &Platform) -> Self {
        let p = normalize(p);
        let os = p.os().to_string();
        let arch = p.architecture().to_string();
        let variant = p.variant().clone();
        let mut accepted = vec![p.clone()];
        let mut add = |arch: &str, variant: Option<String>| {
            let mut c = p.clone();
            c.set_os(Os::from(os.as_str()));
            c.set_architecture(arch_from(arch));
            c.set_variant(variant);
            if !accepted.contains(&c) {
                accepted.push(c);
            }
        };
        match (arch.as_str(), variant.as_deref().and_then(parse_variant)) {
            ("amd64", found) => {
                let level = found.map_or(1, |(maj, _)| maj);
                for l in (2..level).rev() {
                    add("amd64", Some(format!("v{l}")));
                }
                add("amd64", None);
                add("386", None);
            }
            ("arm64", Some((maj, min))) => {
                for m in (0..min).rev() {
                    let v = if m == 0 {
                        format!("v{maj}")
                    } else {
                        format!("v{maj}.{m}")
                    };
                    add("arm64", Some(v));
                }
                // v9.x runs v8.0 up to v8.(x+5), as containerd's table says.
                if maj == 9 {
                    for m in (0..=(min + 5).min(9)).rev() {
                        let v = if m == 0 {
                            "v8".into()
                        } else {
                            format!("v8.{m}")
                        };
                        add("arm64", Some(v));
                    }
                }
                for v in ["v8", "v7", "v6", "v5"] {
                    add("arm", Some(v.into()));
                }
            }
            ("arm", Some((maj, _))) => {
                for l in (5..maj).rev() {
                    add("arm", Some(format!("v{l}")));
                }
            }
            _ => {}
        }
        PlatformMatcher { accepted }
    }

    /// Matches exactly `p` (after normalising), nothing compatible (containerd's
    /// `OnlyStrict`).
    pub fn exact(p: &Platform) -> Self {
        PlatformMatcher {
            accepted: vec![normalize(p)],
        }
    }

    /// Matches the host platform and what it can run.
    pub fn host() -> Self {
        PlatformMatcher::new(&default_platform())
    }

    /// The acceptable platforms, best first.
    pub fn accepted(&self) -> &[Platform] {
        &self.accepted
    }
}

impl Matcher for PlatformMatcher {
    fn rank(&self, p: &Platform) -> Option<usize> {
        let p = normalize(p);
        self.accepted.iter().position(|a| {
            a.os() == p.os() && a.architecture() == p.architecture() && a.variant() == p.variant()
        })
    }
}
