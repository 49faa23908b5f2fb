package certs

import (
	"bytes"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestLoadOrCreateIsStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.ID.IsZero() {
		t.Fatalf("identity changed across loads: %v vs %v", a.ID, b.ID)
	}
	if DeviceIDFromCertificate(b.Certificate.Leaf) != b.ID {
		t.Fatal("ID does not match certificate key")
	}
	if runtime.GOOS != "windows" {
		for _, f := range []string{CertFile, KeyFile} {
			st, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("%s has mode %v, want 0600", f, st.Mode().Perm())
			}
		}
	}
}

func TestCorruptIdentityIsNotReplaced(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	if err := os.WriteFile(keyPath, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreate(dir)
	if err == nil {
		t.Fatal("corrupt key silently accepted or replaced")
	}
	if !strings.Contains(err.Error(), keyPath) {
		t.Fatalf("the error does not name the key file %s: %v", keyPath, err)
	}
	if b, _ := os.ReadFile(keyPath); string(b) != "garbage" {
		t.Fatal("corrupt key replaced")
	}
}

// TestCertificateIsRebuiltFromKey: the device is its key. A certificate
// that is missing or unreadable beside it is made again from the key and
// written, keeping the device ID peers have pinned.
func TestCertificateIsRebuiltFromKey(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, CertFile)
	for _, damage := range []func() error{
		func() error { return os.Remove(certPath) },
		func() error { return os.WriteFile(certPath, []byte("garbage"), 0o600) },
	} {
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		again, err := LoadOrCreate(dir)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID {
			t.Fatalf("device ID changed from %s to %s", first.ID, again.ID)
		}
		if DeviceIDFromCertificate(again.Certificate.Leaf) != first.ID {
			t.Fatal("the certificate does not carry the key")
		}
		written, err := os.ReadFile(certPath)
		if err != nil {
			t.Fatal(err)
		}
		if block, _ := pem.Decode(written); block == nil || !bytes.Equal(block.Bytes, again.Certificate.Certificate[0]) {
			t.Fatal("the certificate made again was not written")
		}
	}
}

func TestDeviceIDRoundTrip(t *testing.T) {
	id := DeviceIDFromDER([]byte("some key"))
	s := id.String()
	if len(s) != 63 || strings.Count(s, "-") != 7 {
		t.Fatalf("unexpected form %q", s)
	}
	for _, in := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", ""), " " + strings.ReplaceAll(s, "-", " ") + "\n"} {
		got, err := ParseDeviceID(in)
		if err != nil || got != id {
			t.Fatalf("parse %q: %v %v", in, got, err)
		}
	}
}

func TestCheckCharacterCatchesTypos(t *testing.T) {
	id := DeviceIDFromDER([]byte("another key"))
	s := []byte(id.String())
	caught, tried := 0, 0
	for i, c := range s {
		if c == '-' {
			continue
		}
		for _, r := range []byte(b32Alphabet) {
			if r == c {
				continue
			}
			typo := append([]byte(nil), s...)
			typo[i] = r
			tried++
			if _, err := ParseDeviceID(string(typo)); errors.Is(err, ErrMalformedID) {
				caught++
			}
		}
	}
	if caught != tried {
		t.Fatalf("single-character typos caught: %d of %d", caught, tried)
	}
	// Adjacent transpositions: most must be caught.
	swapped, caughtSwaps := 0, 0
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '-' || s[i+1] == '-' || s[i] == s[i+1] {
			continue
		}
		typo := append([]byte(nil), s...)
		typo[i], typo[i+1] = typo[i+1], typo[i]
		swapped++
		if _, err := ParseDeviceID(string(typo)); err != nil {
			caughtSwaps++
		}
	}
	if caughtSwaps*10 < swapped*9 {
		t.Fatalf("adjacent swaps caught: %d of %d", caughtSwaps, swapped)
	}
}

func TestParseDeviceIDErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "want 56 characters"},
		{"ABC", "want 56 characters"},
		{strings.Repeat("1", 56), "not a base32 character"},
	} {
		_, err := ParseDeviceID(tc.in)
		if err == nil || !errors.Is(err, ErrMalformedID) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDeviceID(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

// TestReadIDNeedsOnlyTheCertificate: the ID is read from the certificate
// alone, so showing it never touches the key.
func TestReadIDNeedsOnlyTheCertificate(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadID(dir)
	if err != nil || got != id.ID {
		t.Fatalf("ReadID = %v, %v; want %v", got, err, id.ID)
	}
	os.Remove(filepath.Join(dir, CertFile))
	if _, err := ReadID(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadID without a certificate: %v, want ErrNotExist", err)
	}
}
