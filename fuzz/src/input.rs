//! Fuzzer bytes read as a sequence of choices. Reads past the end give zeros, so every
//! input, however short, is a complete script.

/// A cursor over the fuzzer's input.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Nothing is left to read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, 0 once the input is used up.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn u24(&mut self) -> u32 {
        u32::from_be_bytes([0, self.byte(), self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// `data` cut at the given points (each taken modulo `data.len() + 1`, then sorted), so a
/// fuzzer-chosen list of numbers becomes a valid list of pieces that join to `data`.
pub fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for cut in at {
        out.push(&data[start..cut]);
        start = cut;
    }
    out.push(&data[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_zero() {
        let mut input = Input::new(&[1, 2, 3]);
        assert_eq!(input.u16(), 0x0102);
        assert_eq!(input.u16(), 0x0300);
        assert!(input.is_empty());
        assert_eq!(input.byte(), 0);
        assert!(input.bytes(4).is_empty());
    }

    #[test]
    fn pieces_join_to_the_whole() {
        let data = [1u8, 2, 3, 4, 5];
        // 100 % 6 = 4 and 6 % 6 = 0: cuts at 0, 1, 4 and 4.
        let parts = pieces(&data, &[4, 1, 100, 6]);
        assert_eq!(
            parts,
            vec![&[][..], &[1][..], &[2, 3, 4][..], &[][..], &[5][..]]
        );
        assert_eq!(parts.concat(), data);
    }
}
