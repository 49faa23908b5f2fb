package certs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/vectors"
	"github.com/drive-node/drive-node/wire"
)

// idVector is a device ID's bytes and its text.
type idVector struct {
	Bytes vectors.Hex `json:"bytes"`
	ID    string      `json:"id"`
}

// TestDeviceIDVectors checks certs/testdata/device_ids.json: a public
// key's ID, an ID's text both ways, the texts ParseDeviceID accepts and
// the mistyped ones it must refuse. Peers pin these IDs and announce them
// over mDNS, so these tests fail on any change to how an ID is derived or
// written until the vectors and wire.ProtocolVersion change together
// (docs/protocol.md).
func TestDeviceIDVectors(t *testing.T) {
	var v struct {
		Keys []struct {
			PublicKey vectors.Hex `json:"public_key_der"`
			SHA256    vectors.Hex `json:"sha256"`
			ID        string      `json:"id"`
		} `json:"keys"`
		Certificate vectors.Hex `json:"certificate_der"`
		IDs         []idVector  `json:"ids"`
		Accepted    []struct {
			Text string `json:"text"`
			ID   string `json:"id"`
		} `json:"accepted"`
		Refused []struct {
			Text string `json:"text"`
			Why  string `json:"why"`
		} `json:"refused"`
	}
	vectors.Load(t, "testdata/device_ids.json", wire.ProtocolVersion, &v)
	if len(v.Keys) == 0 || len(v.Refused) == 0 {
		t.Fatal("no keys or no refused IDs")
	}
	for _, k := range v.Keys {
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if ec, ok := pub.(*ecdsa.PublicKey); err != nil || !ok || ec.Curve != elliptic.P256() {
			t.Errorf("key %s: not a P-256 public key: %T, %v", k.ID, pub, err)
		}
		id := certs.DeviceIDFromDER(k.PublicKey)
		if !bytes.Equal(id[:], k.SHA256) {
			t.Errorf("key %s: ID bytes %x, want %x", k.ID, id[:], []byte(k.SHA256))
		}
		v.IDs = append(v.IDs, idVector{k.SHA256, k.ID})
	}
	cert, err := x509.ParseCertificate(v.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if id := certs.DeviceIDFromCertificate(cert); id.String() != v.Keys[0].ID {
		t.Errorf("certificate: ID %s, want the first key's, %s", id, v.Keys[0].ID)
	}
	for _, c := range v.IDs {
		id := c.Bytes.Device(t)
		if got := id.String(); got != c.ID {
			t.Errorf("%x: written %s, want %s", id[:], got, c.ID)
		}
		if got, err := certs.ParseDeviceID(c.ID); err != nil || got != id {
			t.Errorf("%s: parsed %x, %v; want %x", c.ID, got[:], err, id[:])
		}
	}
	for _, c := range v.Accepted {
		if got, err := certs.ParseDeviceID(c.Text); err != nil || got.String() != c.ID {
			t.Errorf("%q: parsed %s, %v; want %s", c.Text, got, err, c.ID)
		}
	}
	for _, c := range v.Refused {
		if got, err := certs.ParseDeviceID(c.Text); !errors.Is(err, certs.ErrMalformedID) {
			t.Errorf("%q (%s): parsed %s, %v; want an error wrapping ErrMalformedID", c.Text, c.Why, got, err)
		}
	}
}
