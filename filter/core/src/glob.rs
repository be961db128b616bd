//! Tool-name patterns: exact names and `*` wildcards, nothing else, so an operator can read every rule.

/// Whether `name` matches `pattern`, where `*` matches any run of characters (including none).
pub fn matches(pattern: &str, name: &str) -> bool {
    let p = pattern.as_bytes();
    let n = name.as_bytes();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Position of the last `*` seen and the name position it is currently absorbing up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if n.get(ni) == Some(&c) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Whether every name `inner` matches is also matched by `outer`. Sound because a literal `*` in
/// `inner` can only be absorbed by a wildcard of `outer`, which matches whatever replaces it.
pub fn contains(outer: &str, inner: &str) -> bool {
    matches(outer, inner)
}

/// Whether any pattern of the list matches.
pub fn any_matches<S: AsRef<str>>(patterns: &[S], name: &str) -> bool {
    patterns.iter().any(|p| matches(p.as_ref(), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_patterns() {
        assert!(matches("read_invoice", "read_invoice"));
        assert!(!matches("read_invoice", "read_invoices"));
        assert!(matches("read_*", "read_invoice"));
        assert!(matches("read_*", "read_"));
        assert!(!matches("read_*", "write_invoice"));
        assert!(matches("*", ""));
        assert!(matches("*_invoice", "read_invoice"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("**", "anything"));
        assert!(!matches("", "x"));
    }

    #[test]
    fn containment_never_widens() {
        assert!(contains("read_*", "read_inv*"));
        assert!(contains("*", "read_*"));
        assert!(contains("read_*", "read_invoice"));
        assert!(!contains("read_invoice", "read_*"));
        assert!(!contains("read_*", "*"));
        assert!(!contains("a*c", "a*"));
    }
}
