package pairing

import (
	"bufio"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

//go:embed words.txt
var wordsFile string

// wordCount is how many words the list holds: 10 bits a word.
const wordCount = 1024

// codeWords is how many words a code has after its number.
const codeWords = 3

// MaxSlot is the largest number a code starts with.
const MaxSlot = 999

// ErrBadCode is wrapped by the errors of ParseCode.
var ErrBadCode = errors.New("not a pairing code")

// Code is a one-time pairing code, as "7-orbit-velvet-canyon": a number
// (the slot, announced on the LAN so the joiner finds the inviting device;
// it is no secret) and three words from the shipped list (the secret, 30
// bits: enough because the exchange allows one guess per invite).
type Code struct {
	Slot  int
	Words [codeWords]string
}

// String is the code as people read it out.
func (c Code) String() string {
	return strconv.Itoa(c.Slot) + "-" + strings.Join(c.Words[:], "-")
}

// password is what keys the PAKE: the whole code, number included.
func (c Code) password() []byte { return []byte("drive-node pairing code " + c.String()) }

// wordList returns the shipped words in order, and their index.
func wordList() ([]string, map[string]int) {
	var list []string
	sc := bufio.NewScanner(strings.NewReader(wordsFile))
	for sc.Scan() {
		w := strings.TrimSpace(sc.Text())
		if w == "" || strings.HasPrefix(w, "#") {
			continue
		}
		list = append(list, w)
	}
	index := make(map[string]int, len(list))
	for i, w := range list {
		index[w] = i
	}
	return list, index
}

// NewCode draws a code from crypto/rand.
func NewCode() (Code, error) {
	list, _ := wordList()
	if len(list) != wordCount {
		return Code{}, fmt.Errorf("pairing: word list holds %d words, want %d", len(list), wordCount)
	}
	var c Code
	n, err := rand.Int(rand.Reader, big.NewInt(MaxSlot))
	if err != nil {
		return Code{}, fmt.Errorf("pairing: draw a code: %w", err)
	}
	c.Slot = int(n.Int64()) + 1
	for i := range c.Words {
		n, err := rand.Int(rand.Reader, big.NewInt(wordCount))
		if err != nil {
			return Code{}, fmt.Errorf("pairing: draw a code: %w", err)
		}
		c.Words[i] = list[n.Int64()]
	}
	return c, nil
}

// ParseCode reads a code as a person typed it: case and spaces or dashes
// between the parts do not matter; every word must be one of the list.
func ParseCode(s string) (Code, error) {
	parts := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == '-' || r == ' ' || r == '\t' })
	if len(parts) != 1+codeWords {
		return Code{}, fmt.Errorf("%q: want a number and %d words, as 7-orbit-velvet-canyon: %w", s, codeWords, ErrBadCode)
	}
	var c Code
	slot, err := strconv.Atoi(parts[0])
	if err != nil || slot < 1 || slot > MaxSlot {
		return Code{}, fmt.Errorf("%q: it must start with a number from 1 to %d: %w", s, MaxSlot, ErrBadCode)
	}
	c.Slot = slot
	_, index := wordList()
	for i, w := range parts[1:] {
		if _, ok := index[w]; !ok {
			return Code{}, fmt.Errorf("%q: %q is not a word of pairing codes (mistyped?): %w", s, w, ErrBadCode)
		}
		c.Words[i] = w
	}
	return c, nil
}
