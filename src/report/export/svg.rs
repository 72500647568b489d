//! The SVG plots: each plotted metric against the training step, and a ladder's critic loss
//! across its stages. They are drawn when the [`Report`] is built (the Markdown links only the
//! plots that drew); this exporter hands them out as files under `plots/`.

use super::{Exporter, Output, Report, ReportError};

/// Every plot that drew, as `plots/<name>.svg`.
pub struct Plots;

impl Exporter for Plots {
    fn export(&self, report: &Report) -> Result<Vec<Output>, ReportError> {
        Ok(report
            .plots
            .iter()
            .map(|p| Output {
                name: p.path.clone(),
                bytes: p.svg.clone().into_bytes(),
            })
            .collect())
    }
}
