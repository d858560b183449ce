//! An MSB-first bit reader over a byte slice, with the Exp-Golomb codes of H.264/H.265.
//! Every read is bounded by the slice and names the field it reads, so running out is a
//! [`CodecError::OutOfBits`] that says where.
//!
//! Spec: ITU-T H.265 §7.2 (read_bits), §9.2 (ue(v), se(v)); AV1 §4.10.3 (uvlc()).

use super::CodecError;

/// Reads bits most significant first from a byte slice (an RBSP: emulation prevention bytes
/// already removed).
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    structure: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`; errors name `structure`.
    pub(crate) fn new(data: &'a [u8], structure: &'static str) -> BitReader<'a> {
        BitReader {
            data,
            pos: 0,
            structure,
        }
    }

    /// Bits not read yet.
    pub(crate) fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    fn out_of_bits(&self, field: &'static str, needed: usize) -> CodecError {
        CodecError::OutOfBits {
            structure: self.structure,
            field,
            bit_offset: self.pos,
            needed,
            available: self.remaining(),
        }
    }

    /// Reads `n` bits (at most 64) as an unsigned number.
    pub(crate) fn u(&mut self, n: u32, field: &'static str) -> Result<u64, CodecError> {
        debug_assert!(n <= 64);
        let n = n.min(64);
        if (n as usize) > self.remaining() {
            return Err(self.out_of_bits(field, n as usize));
        }
        let mut value: u64 = 0;
        for _ in 0..n {
            let byte = self.data[self.pos / 8];
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            value = (value << 1) | u64::from(bit);
            self.pos += 1;
        }
        Ok(value)
    }

    /// Reads `n` bits (at most 8) as a `u8`.
    pub(crate) fn u8(&mut self, n: u32, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.u(n.min(8), field)? as u8)
    }

    /// Reads `n` bits (at most 32) as a `u32`.
    pub(crate) fn u32(&mut self, n: u32, field: &'static str) -> Result<u32, CodecError> {
        Ok(self.u(n.min(32), field)? as u32)
    }

    /// Reads one bit as a flag.
    pub(crate) fn flag(&mut self, field: &'static str) -> Result<bool, CodecError> {
        Ok(self.u(1, field)? == 1)
    }

    /// Skips `n` bits.
    pub(crate) fn skip(&mut self, n: usize, field: &'static str) -> Result<(), CodecError> {
        if n > self.remaining() {
            return Err(self.out_of_bits(field, n));
        }
        self.pos += n;
        Ok(())
    }

    /// Reads an unsigned Exp-Golomb code, ue(v). More than 31 leading zero bits (a value
    /// above 2^32 - 2) is refused: no syntax element of H.265 is that large.
    pub(crate) fn ue(&mut self, field: &'static str) -> Result<u32, CodecError> {
        let mut leading_zeros = 0u32;
        while !self.flag(field)? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(CodecError::invalid(
                    self.structure,
                    field,
                    u64::from(leading_zeros),
                    "Exp-Golomb code with more than 31 leading zero bits",
                ));
            }
        }
        let suffix = self.u(leading_zeros, field)?;
        Ok(((1u64 << leading_zeros) - 1 + suffix) as u32)
    }

    /// Reads a signed Exp-Golomb code, se(v).
    pub(crate) fn se(&mut self, field: &'static str) -> Result<i32, CodecError> {
        let k = i64::from(self.ue(field)?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(value as i32)
    }

    /// Reads an unsigned ue(v) and refuses values above `max`.
    pub(crate) fn ue_max(&mut self, field: &'static str, max: u32) -> Result<u32, CodecError> {
        let value = self.ue(field)?;
        if value > max {
            return Err(CodecError::invalid(
                self.structure,
                field,
                value,
                "above the range the specification allows",
            ));
        }
        Ok(value)
    }

    /// Reads AV1's uvlc(): a variable-length unsigned code; 32 or more leading zeros give
    /// 2^32 - 1, as the AV1 specification says.
    pub(crate) fn uvlc(&mut self, field: &'static str) -> Result<u32, CodecError> {
        let mut leading_zeros = 0u32;
        while !self.flag(field)? {
            leading_zeros += 1;
        }
        if leading_zeros >= 32 {
            return Ok(u32::MAX);
        }
        let value = self.u(leading_zeros, field)?;
        Ok(((1u64 << leading_zeros) - 1 + value) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bits_and_exp_golomb() {
        // 1 | 010 | 011 | 00100 | 0001000 ... : ue 0, 1, 2, 3, 7
        let data = [0b1010_0110, 0b0100_0010, 0b0000_0000];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.ue("a").unwrap(), 0);
        assert_eq!(r.ue("b").unwrap(), 1);
        assert_eq!(r.ue("c").unwrap(), 2);
        assert_eq!(r.ue("d").unwrap(), 3);
        assert_eq!(r.remaining(), 12);
        // 00100 | 1 | 010: se +2, 0, +1
        let data = [0b0010_0101, 0b0000_0000];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.se("a").unwrap(), 2);
        assert_eq!(r.se("b").unwrap(), 0);
        assert_eq!(r.se("c").unwrap(), 1);
        assert_eq!(r.u(3, "d").unwrap(), 0);
        assert!(matches!(
            r.u(5, "e"),
            Err(CodecError::OutOfBits {
                field: "e",
                bit_offset: 12,
                needed: 5,
                available: 4,
                ..
            })
        ));
    }

    #[test]
    fn long_codes_are_bounded() {
        let zeros = [0u8; 8];
        let mut r = BitReader::new(&zeros, "test");
        assert!(matches!(
            r.ue("x"),
            Err(CodecError::InvalidField { field: "x", .. })
        ));
        let mut r = BitReader::new(&zeros, "test");
        assert!(matches!(r.uvlc("x"), Err(CodecError::OutOfBits { .. })));
        let mut data = [0u8; 9];
        data[4] = 0x80;
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.uvlc("x").unwrap(), u32::MAX);
    }
}
