//! Character tokenizer: 5 special tokens and 51 characters.
//!
//! Out-of-vocabulary input is mapped, never rejected: letters are folded to lower case
//! (`A` → `a`), common Unicode quotes and dashes to their ASCII forms, whitespace runs of
//! any kind to one space, and anything else to `<unk>`.

/// Padding.
pub const PAD: u32 = 0;
/// Start of a sequence.
pub const BOS: u32 = 1;
/// Between the sentence and its correction.
pub const SEP: u32 = 2;
/// End of the correction.
pub const EOS: u32 = 3;
/// Unknown character.
pub const UNK: u32 = 4;

const SPECIALS: usize = 5;
const CHARS: &str = " abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;\"()/&*";

/// Maps text to token ids and back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokenizer;

impl Tokenizer {
    /// Number of symbols.
    pub const SIZE: usize = SPECIALS + 51;

    fn id_of(c: char) -> u32 {
        let c = match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '‘' | '’' => '\'',
            '“' | '”' => '"',
            '–' | '—' => '-',
            c if c.is_whitespace() => ' ',
            c => c,
        };
        CHARS.chars().position(|x| x == c).map_or(UNK, |i| (i + SPECIALS) as u32)
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::with_capacity(text.len());
        for id in text.chars().map(Self::id_of) {
            // Runs of whitespace become one space.
            if !(id == SPECIALS as u32 && out.last() == Some(&(SPECIALS as u32))) {
                out.push(id);
            }
        }
        out
    }

    /// Text of token ids; special tokens are dropped and `<unk>` shows as `�`.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter_map(|&id| match id as usize {
                i if i == UNK as usize => Some('\u{fffd}'),
                i if i < SPECIALS => None,
                i => CHARS.chars().nth(i - SPECIALS),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_six_symbols_and_round_trips() {
        assert_eq!(CHARS.chars().count(), 51);
        let t = Tokenizer;
        assert_eq!(t.decode(&t.encode("hello, world 42!")), "hello, world 42!");
    }

    #[test]
    fn out_of_vocabulary_input_is_mapped() {
        let t = Tokenizer;
        assert_eq!(t.decode(&t.encode("Hello\t\n  “World”")), "hello \"world\"");
        assert_eq!(t.encode("é€"), vec![UNK, UNK]);
        assert_eq!(t.decode(&[BOS, UNK, SEP, EOS]), "\u{fffd}");
    }
}
