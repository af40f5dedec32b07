// SPDX-License-Identifier: AGPL-3.0-or-later
//! The call-flow picture: a ladder diagram like sngrep's, one column per address and one
//! arrow per message, as a standalone SVG or as one self-contained HTML page (inline SVG,
//! style and script; no network) where clicking an arrow shows the whole message.

use std::fmt::Write;

use super::dump::DumpedMessage;

const LEFT: usize = 190;
const COLUMN: usize = 190;
const TOP: usize = 70;
const ROW: usize = 36;

/// The ladder as an SVG document.
pub fn svg(messages: &[DumpedMessage]) -> String {
    let columns = columns(messages);
    let width = LEFT + COLUMN * columns.len().max(1);
    let height = TOP + ROW * (messages.len() + 1);
    let mut out = String::with_capacity(512 + messages.len() * 400);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="ladder" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">"#
    );
    out.push_str(
        r##"<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="12" markerHeight="12" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"##,
    );
    for (i, address) in columns.iter().enumerate() {
        let x = column_x(i);
        let _ = write!(
            out,
            r##"<g class="endpoint"><rect x="{}" y="10" width="{}" height="26" rx="4" fill="#eef2f7" stroke="#56657a"/><text x="{x}" y="28" text-anchor="middle">{}</text><line x1="{x}" y1="36" x2="{x}" y2="{height}" stroke="#9aa5b4" stroke-dasharray="4 4"/></g>"##,
            x - COLUMN / 2 + 10,
            COLUMN - 20,
            escape(address)
        );
    }
    let first = messages.first().map_or(0, |m| m.time.0);
    for (i, m) in messages.iter().enumerate() {
        let y = TOP + ROW * i + ROW / 2;
        let from = column_of(&columns, &m.src.to_string());
        let to = column_of(&columns, &m.dst.to_string());
        let (x1, x2) = (column_x(from), column_x(to));
        let color = color_of(&m.label);
        let clock = m.time.to_rfc3339();
        let clock = clock.get(11..23).unwrap_or(&clock);
        let delta = (m.time.0 - first) as f64 / 1e6;
        let _ = write!(
            out,
            r##"<g class="arrow" data-index="{i}" style="cursor:pointer"><title>{}</title><text x="8" y="{}" fill="#56657a">{clock} +{delta:.3}s</text>"##,
            escape(m.text.lines().next().unwrap_or_default()),
            y + 4
        );
        if from == to {
            // A message to itself: a small loop on its own column.
            let _ = write!(
                out,
                r#"<path d="M{x1},{} h30 v12 h-30" fill="none" stroke="{color}" stroke-width="2" marker-end="url(#head)"/>"#,
                y - 6
            );
        } else {
            let _ = write!(
                out,
                r#"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{color}" stroke-width="2" marker-end="url(#head)"/><line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="transparent" stroke-width="14"/>"#
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" fill="{color}">{}</text></g>"#,
            (x1 + x2) / 2 + if from == to { 60 } else { 0 },
            y - 6,
            escape(&m.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The ladder as one HTML page; `title` names it (the Call-ID, say). Opened as `page.html#N`,
/// it starts with message N shown.
pub fn html(title: &str, messages: &[DumpedMessage]) -> String {
    // The messages ride along as JSON; `</` is escaped so no message can end the script.
    let data = serde_json::to_string(messages)
        .unwrap_or_else(|_| "[]".into())
        .replace("</", "<\\/");
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — spycraft call flow</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }}
#flow {{ flex: 1 1 auto; overflow: auto; padding: 8px; border-right: 1px solid #ccd; }}
#detail {{ flex: 0 0 34%; overflow: auto; padding: 8px 12px; background: #f8f9fb; }}
#detail pre {{ white-space: pre-wrap; word-break: break-all; font-size: 12px; }}
.arrow:hover text {{ font-weight: bold; }}
.arrow.selected line:first-of-type {{ stroke-width: 4; }}
h1 {{ font-size: 15px; margin: 4px 0 8px; }}
</style></head>
<body>
<div id="flow"><h1>{title}: {count} messages</h1>
{svg}</div>
<div id="detail"><h1 id="detail-title">Click an arrow to see its message</h1><pre id="message"></pre></div>
<script type="application/json" id="messages">{data}</script>
<script>
(function () {{
  var messages = JSON.parse(document.getElementById('messages').textContent);
  var arrows = document.querySelectorAll('.arrow');
  arrows.forEach(function (arrow) {{
    arrow.addEventListener('click', function () {{
      var m = messages[Number(arrow.dataset.index)];
      arrows.forEach(function (a) {{ a.classList.remove('selected'); }});
      arrow.classList.add('selected');
      document.getElementById('detail-title').textContent =
        m.time + '  ' + m.src + ' → ' + m.dst + '  ' + m.transport.toUpperCase();
      document.getElementById('message').textContent = m.text;
    }});
  }});
  // `call.html#3` opens with message 3 shown.
  var chosen = arrows[Number(location.hash.slice(1))];
  if (location.hash && chosen) {{ chosen.dispatchEvent(new Event('click')); }}
  document.body.dataset.arrows = String(arrows.length);
  document.body.dataset.ready = '1';
}})();
</script>
</body></html>
"#,
        title = escape(title),
        count = messages.len(),
        svg = svg(messages),
    )
}

/// Addresses in the order they first appear.
fn columns(messages: &[DumpedMessage]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for m in messages {
        for a in [m.src.to_string(), m.dst.to_string()] {
            if !columns.contains(&a) {
                columns.push(a);
            }
        }
    }
    columns
}

fn column_of(columns: &[String], address: &str) -> usize {
    columns.iter().position(|c| c == address).unwrap_or(0)
}

fn column_x(i: usize) -> usize {
    LEFT + COLUMN * i + COLUMN / 2
}

/// Requests blue, provisional grey, success green, failures red.
fn color_of(label: &str) -> &'static str {
    match label.as_bytes().first() {
        Some(b'1') => "#7a8596",
        Some(b'2') => "#1d8a3a",
        Some(b'3'..=b'6') => "#c0392b",
        _ => "#1f5fbf",
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Timestamp;
    use crate::decode::Transport;

    fn message(label: &str, src: &str, dst: &str, text: &str) -> DumpedMessage {
        DumpedMessage {
            time: Timestamp(1_764_138_172_000_000),
            src: src.parse().expect("src"),
            dst: dst.parse().expect("dst"),
            transport: Transport::Udp,
            call_id: "c".into(),
            label: label.into(),
            text: text.into(),
        }
    }

    #[test]
    fn draws_one_arrow_per_message_between_address_columns() {
        let m = [
            message(
                "INVITE",
                "10.0.0.1:5060",
                "10.0.0.2:5060",
                "INVITE sip:b SIP/2.0\n",
            ),
            message(
                "200 OK",
                "10.0.0.2:5060",
                "10.0.0.1:5060",
                "SIP/2.0 200 OK\n",
            ),
            message(
                "ACK",
                "10.0.0.1:5060",
                "10.0.0.3:5060",
                "ACK sip:b SIP/2.0\n",
            ),
        ];
        let svg = svg(&m);
        assert_eq!(svg.matches(r#"<g class="arrow""#).count(), 3);
        assert_eq!(svg.matches(r#"<g class="endpoint""#).count(), 3);
        assert!(svg.contains(">200 OK</text>"));
    }

    #[test]
    fn no_message_can_break_out_of_the_page() {
        let hostile = "MESSAGE sip:x SIP/2.0\n\n</script><script>alert(1)</script><b>";
        let page = html(
            "<call>",
            &[message("MESSAGE", "10.0.0.1:1", "10.0.0.2:2", hostile)],
        );
        assert!(!page.contains("</script><script>alert"));
        assert!(page.contains("&lt;call&gt;"));
        assert_eq!(
            page.matches("</script>").count(),
            2,
            "only the page's own scripts end"
        );
    }
}
