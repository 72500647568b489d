//! The report's output formats, one file each behind [`Exporter`] (hyperfine's `export/` is the
//! model): Markdown rendered from a template, the SVG plots, and JUnit XML.
//!
//! An exporter turns a built [`Report`] into bytes and never touches the disk: whoever owns the
//! results folder writes them (atomically), so a report can be rendered from a read-only folder.

mod junit;
mod markdown;
mod svg;

pub use junit::{junit_xml, Junit};
pub use markdown::{check_template, Markdown, DEFAULT_TEMPLATE};
pub use svg::Plots;

use std::path::PathBuf;

use super::{Report, ReportError};

/// One file an exporter made.
#[derive(Debug, Clone)]
pub struct Output {
    /// Where it belongs, relative to the results folder (`VALIDATION_<name>.md`, `plots/x.svg`).
    pub name: PathBuf,
    pub bytes: Vec<u8>,
}

/// One output format of the report.
pub trait Exporter {
    /// The files this format makes of `report`.
    fn export(&self, report: &Report) -> Result<Vec<Output>, ReportError>;
}
