// SPDX-License-Identifier: AGPL-3.0-or-later
//! Test support shared by the integration tests of this crate.

pub mod postgres;
