package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// DeviceID identifies a device: the SHA-256 of its certificate's public key
// (PKIX DER). The zero value identifies no device.
type DeviceID [32]byte

// ErrMalformedID is wrapped by every ParseDeviceID failure.
var ErrMalformedID = errors.New("malformed device ID")

const (
	// Each 13-character chunk of base32 gets one check character, making
	// four 14-character chunks shown as eight groups of seven.
	chunkLen   = 13
	groupLen   = 7
	encodedLen = 52 // base32 of 32 bytes without padding
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// DeviceIDFromDER returns the ID of the PKIX-encoded public key der.
func DeviceIDFromDER(der []byte) DeviceID { return DeviceID(sha256.Sum256(der)) }

// DeviceIDFromCertificate returns the ID of the certificate's public key.
func DeviceIDFromCertificate(c *x509.Certificate) DeviceID {
	return DeviceIDFromDER(c.RawSubjectPublicKeyInfo)
}

// IsZero reports whether id is the zero value.
func (id DeviceID) IsZero() bool { return id == DeviceID{} }

// String returns the ID as a person reads it aloud: 56 base32 characters in
// eight dash-separated groups of seven, every fourteenth character a check
// character over the thirteen before it.
func (id DeviceID) String() string {
	enc := b32.EncodeToString(id[:])
	var withCheck strings.Builder
	for i := 0; i < encodedLen; i += chunkLen {
		chunk := enc[i : i+chunkLen]
		withCheck.WriteString(chunk)
		withCheck.WriteByte(luhnBase32(chunk))
	}
	s := withCheck.String()
	var out strings.Builder
	for i := 0; i < len(s); i += groupLen {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(s[i : i+groupLen])
	}
	return out.String()
}

// Short returns the first group of the ID, enough to tell devices apart in
// logs and file names.
func (id DeviceID) Short() string { return id.String()[:groupLen] }

// MarshalText implements encoding.TextMarshaler.
func (id DeviceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *DeviceID) UnmarshalText(b []byte) error {
	p, err := ParseDeviceID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseDeviceID parses an ID written by String. Dashes and spaces are
// ignored and lower case is accepted; a wrong length, a character outside
// base32 or a failed check character is an error wrapping ErrMalformedID
// that says which.
func ParseDeviceID(s string) (DeviceID, error) {
	var id DeviceID
	clean := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s)))
	if len(clean) != encodedLen+encodedLen/chunkLen {
		return id, fmt.Errorf("%w %q: want 56 characters (8 groups of 7), got %d", ErrMalformedID, s, len(clean))
	}
	var enc strings.Builder
	for i := 0; i < len(clean); i += chunkLen + 1 {
		chunk, check := clean[i:i+chunkLen], clean[i+chunkLen]
		for _, c := range chunk + string(check) {
			if !strings.ContainsRune(b32Alphabet, c) {
				return id, fmt.Errorf("%w %q: %q is not a base32 character", ErrMalformedID, s, c)
			}
		}
		if luhnBase32(chunk) != check {
			return id, fmt.Errorf("%w %q: check character of group %d does not match (a typo?)", ErrMalformedID, s, 2*(i/(chunkLen+1))+2)
		}
		enc.WriteString(chunk)
	}
	b, err := b32.DecodeString(enc.String())
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w %q: %v", ErrMalformedID, s, err)
	}
	copy(id[:], b)
	return id, nil
}
