package certs

import "strings"

const b32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// luhnBase32 computes the Luhn mod N check character (N = 32) of s, which
// must consist of base32 characters. It catches every single-character
// substitution and most transpositions of adjacent characters.
func luhnBase32(s string) byte {
	const n = len(b32Alphabet)
	factor, sum := 1, 0
	for i := len(s) - 1; i >= 0; i-- {
		addend := factor * strings.IndexByte(b32Alphabet, s[i])
		factor = 3 - factor // alternate 2 and 1 from the right
		addend = addend/n + addend%n
		sum += addend
	}
	return b32Alphabet[(n-sum%n)%n]
}
