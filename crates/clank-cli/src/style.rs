//! Colour in the human output: only on a terminal, never with `--json`, and never when
//! `NO_COLOR` is set to anything (https://no-color.org).

use clank_core::deploy::DeploymentStatus;

/// Whether to colour, decided once per run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Style {
    colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal, the output is not JSON, and `NO_COLOR` is unset.
    pub(crate) fn detect(json: bool) -> Self {
        Style {
            colour: !json && clank_core::colour::on(&std::io::stdout()),
        }
    }

    /// A deployment status, green when ACTIVE, red when FAILED, yellow while in progress.
    pub(crate) fn status(&self, s: DeploymentStatus) -> String {
        let code = match s {
            DeploymentStatus::Active => "32",
            DeploymentStatus::Failed => "31",
            DeploymentStatus::Superseded | DeploymentStatus::Cancelled => "2",
            _ => "33",
        };
        self.paint(code, s.as_str())
    }

    /// Bold, for a heading.
    pub(crate) fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_colour_a_status_is_its_plain_name() {
        let plain = Style { colour: false };
        assert_eq!(plain.status(DeploymentStatus::Active), "ACTIVE");
        let coloured = Style { colour: true };
        assert_eq!(
            coloured.status(DeploymentStatus::Failed),
            "\x1b[31mFAILED\x1b[0m"
        );
    }
}
