// SPDX-License-Identifier: AGPL-3.0-or-later
//! Aligned text tables for people at a terminal: the record table, `find`, `stats`.

/// `header` and `rows` in columns two spaces apart; columns from `right_from` on are
/// right-aligned (numbers), the others left-aligned; no trailing spaces.
pub fn aligned(header: &[&str], rows: &[Vec<String>], right_from: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> = cells
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
                if i >= right_from {
                    format!("{pad}{cell}")
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_left_and_right_and_trims_the_end() {
        let rows = vec![
            vec!["alpha".to_owned(), "1".to_owned(), "x".to_owned()],
            vec!["b".to_owned(), "200".to_owned(), String::new()],
        ];
        assert_eq!(
            aligned(&["NAME", "N", "NOTE"], &rows, 1),
            "NAME     N  NOTE\nalpha    1     x\nb      200\n"
        );
        assert_eq!(
            aligned(&["NAME", "N"], &rows[..1], usize::MAX),
            "NAME   N\nalpha  1\n"
        );
    }
}
