//! The bundled font, registered once for the bitmap backend.

use plotters::style::FontStyle;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name charts use.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers DejaVu Sans as `sans-serif` for every style (idempotent).
pub(crate) fn ensure_registered() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique] {
            // The font is bundled and valid; a failure would only lose PNG text.
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}
