#include "common/text/unicode.h"

#include <gtest/gtest.h>

namespace tpserve::text {
namespace {

TEST(UnicodeTest, Classes) {
  EXPECT_EQ(ClassOf('a'), kLetter);
  EXPECT_EQ(ClassOf(0x4E2D), kLetter);  // 中
  EXPECT_EQ(ClassOf('7'), kNumber);
  EXPECT_EQ(ClassOf(0x0663), kNumber);  // ARABIC-INDIC DIGIT THREE
  EXPECT_EQ(ClassOf(0x2160), kNumber);  // ROMAN NUMERAL ONE (Nl)
  EXPECT_EQ(ClassOf(0x3000), kWhitespace);
  EXPECT_EQ(ClassOf(0x200B), 0);        // zero width space is not White_Space
  EXPECT_EQ(ClassOf(0x20000), kLetter);  // CJK extension B, past the BMP
  EXPECT_EQ(ClassOf(0x1F600), 0);        // emoji
  EXPECT_TRUE(ClassOf(0x0301) & kNfcUnsafe);
  EXPECT_EQ(ClassOf(0xE0100), kNfcUnsafe & 0);  // variation selector: no flags
}

TEST(UnicodeTest, ValidityAndLossy) {
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  // Maximal subparts, as Python's bytes.decode(errors="replace") gives.
  EXPECT_EQ(Utf8Lossy("a\xF0\x9F\x98z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(Utf8Lossy("\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xE0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Utf8Lossy("\xE2\x82"), "\xEF\xBF\xBD");
}

TEST(UnicodeTest, DecodablePrefix) {
  EXPECT_EQ(DecodablePrefixLength("ab\xE4\xB8"), 2u);  // half of 中
  EXPECT_EQ(DecodablePrefixLength("ab\xE4\xB8\xAD"), 5u);
  EXPECT_EQ(DecodablePrefixLength("ab\xF0"), 2u);
  EXPECT_EQ(DecodablePrefixLength("ab\x80"), 3u);  // invalid, not incomplete
  EXPECT_EQ(DecodablePrefixLength("ab\xC0"), 3u);  // never valid
}

TEST(UnicodeTest, Nfc) {
  EXPECT_EQ(NormalizeNfc("cafe\xCC\x81"), "caf\xC3\xA9");            // e + acute
  EXPECT_EQ(NormalizeNfc("\xE2\x84\xAB"), "\xC3\x85");                // ANGSTROM SIGN -> Å
  EXPECT_EQ(NormalizeNfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");  // jamo -> 가
  // a + dot below (220) + acute (230) stays in canonical order; q has no composite.
  EXPECT_EQ(NormalizeNfc("q\xCC\x81\xCC\xA3"), "q\xCC\xA3\xCC\x81");
  EXPECT_EQ(NormalizeNfc("plain ascii"), "plain ascii");
  EXPECT_TRUE(IsNfcQuick("\xE4\xB8\xAD\xE6\x96\x87"));
}

TEST(UnicodeTest, NfcOnlyTouchesUnsafeStretches) {
  // Expected bytes from Python's unicodedata.normalize("NFC", ...).
  EXPECT_EQ(NormalizeNfc("ab cafe\xcc\x81 x \xe2\x84\xab y \xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8 q\xcc\x81\xcc\xa3 end"),
            "ab caf\xc3\xa9 x \xc3\x85 y \xea\xb0\x81 q\xcc\xa3\xcc\x81 end");
  EXPECT_EQ(NormalizeNfc("\xcc\x81start"), "\xcc\x81start");  // leading combining mark stays
}

}  // namespace
}  // namespace tpserve::text
