// SPDX-License-Identifier: AGPL-3.0-or-later
//! Parser throughput on realistic messages.
fn main() {}
