//! Helpers shared by the workspace integration tests in `tests/tests/`: deterministic fixtures
//! ([`fixtures`]), the real kubo and JS tools under `tests/interop/` ([`interop`]), and the
//! ipfs-kit side of each comparison: the library ([`ours`]) and the binary ([`cli`]).

pub mod cli;
pub mod fixtures;
pub mod interop;
pub mod kubo_serve;
pub mod our_node;
pub mod ours;

/// Prints a comparison table (fixture, reference CID, our CID, verdict) and returns the rows
/// that differ, so a test can print everything before it fails.
pub fn compare_table(
    title: &str,
    rows: &[(String, Result<String, String>, Result<String, String>)],
) -> Vec<String> {
    let show = |r: &Result<String, String>| match r {
        Ok(s) => s.clone(),
        Err(e) => format!("ERROR: {e}"),
    };
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(8).max(8);
    println!("\n== {title}");
    println!(
        "{:<width$}  {:<62}  {:<62}  ok",
        "fixture", "reference", "ipfs-kit"
    );
    let mut bad = Vec::new();
    for (name, theirs, ours) in rows {
        let same = matches!((theirs, ours), (Ok(a), Ok(b)) if a == b);
        println!(
            "{:<width$}  {:<62}  {:<62}  {}",
            name,
            show(theirs),
            show(ours),
            if same { "yes" } else { "NO" }
        );
        if !same {
            bad.push(format!(
                "{name}: reference {} vs ipfs-kit {}",
                show(theirs),
                show(ours)
            ));
        }
    }
    bad
}
