package oplog

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/drive-node/drive-node/certs"
)

// Link names an op: the SHA-256 of its encoding without the signature.
// Each op (but a legacy one) carries its predecessor's Link in Prev, so
// the Link of an origin's op n covers ops 1..n of that origin (back to
// its last legacy op), and one signature over it proves them all.
type Link [32]byte

// IsZero reports whether l is the zero Link (the Prev of an origin's
// first op).
func (l Link) IsZero() bool { return l == Link{} }

// signatureDomain is hashed before a Link to make the digest that is
// signed, so that no signature over an op is also one over anything else
// this device signs (its TLS handshakes sign other digests).
const signatureDomain = "drive-node op signature 1\x00"

// MaxSigLen bounds Sig: an ASN.1 ECDSA P-256 signature takes at most 72
// bytes.
const MaxSigLen = 72

// ErrUnauthenticated is wrapped by Insert's error when an op cannot be
// shown to come from the device it names: its origin's key is unknown
// here, its signature does not verify, it does not chain to the op before
// it, it is the last of its origin in the call and unsigned, or it is a
// legacy op relayed by a device other than its origin.
var ErrUnauthenticated = errors.New("oplog: op not shown to come from its origin")

// ErrConflict is wrapped by Insert's error when a peer sends an op for an
// (origin, sequence) the log holds a different op for. Nothing of the call
// past it is stored; the op held stays.
var ErrConflict = errors.New("oplog: a different op for a sequence the log holds")

// Link returns the op's Link.
func (o Op) Link() Link {
	var buf [256]byte
	return sha256.Sum256(o.appendBody(buf[:0]))
}

// signingDigest is what the origin signs for an op with link l.
func signingDigest(l Link) []byte {
	h := sha256.New()
	h.Write([]byte(signatureDomain))
	h.Write(l[:])
	return h.Sum(nil)
}

// sign returns key's signature over link.
func sign(key crypto.Signer, l Link) ([]byte, error) {
	sig, err := key.Sign(rand.Reader, signingDigest(l), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("oplog: sign op: %w", err)
	}
	if len(sig) > MaxSigLen {
		return nil, fmt.Errorf("oplog: sign op: signature of %d bytes, over %d", len(sig), MaxSigLen)
	}
	return sig, nil
}

// Seal makes ops, consecutive ops of one origin in sequence order, a
// chain that Insert accepts: each op's Prev is the Link of the one before
// it (prev for the first, the Link of the origin's op before them, zero
// before its first op), and the last op is signed with key, the origin's.
// It returns the last op's Link. The log seals this device's ops itself;
// Seal is for tests and tools that speak for another device.
func Seal(key crypto.Signer, prev Link, ops []Op) (Link, error) {
	for i := range ops {
		ops[i].Prev, ops[i].Sig, ops[i].Legacy = prev, nil, false
		if err := ops[i].Validate(); err != nil {
			return Link{}, err
		}
		prev = ops[i].Link()
	}
	if len(ops) > 0 {
		sig, err := sign(key, prev)
		if err != nil {
			return Link{}, err
		}
		ops[len(ops)-1].Sig = sig
	}
	return prev, nil
}

// OriginKey is the public key of a device whose ops a log may hold.
type OriginKey struct {
	// ID is the device: the SHA-256 of DER.
	ID certs.DeviceID
	// DER is the key, PKIX-encoded, as the device's certificate holds it.
	DER []byte
	pub *ecdsa.PublicKey
}

// maxKeyDER bounds a key's encoding. A P-256 key takes 91 bytes; the
// bound leaves room and no more.
const maxKeyDER = 256

// ParseOriginKey reads a PKIX-encoded public key. Devices sign with ECDSA
// P-256 keys (package certs makes them); any other key is refused.
func ParseOriginKey(der []byte) (OriginKey, error) {
	if len(der) > maxKeyDER {
		return OriginKey{}, fmt.Errorf("oplog: origin key of %d bytes, over %d", len(der), maxKeyDER)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return OriginKey{}, fmt.Errorf("oplog: origin key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return OriginKey{}, fmt.Errorf("oplog: origin key is a %T, not an ECDSA P-256 key", k)
	}
	return OriginKey{ID: certs.DeviceIDFromDER(der), DER: append([]byte(nil), der...), pub: pub}, nil
}

// Signed reports whether o.Sig is k's signature over o's Link.
func (k OriginKey) Signed(o Op) bool { return len(o.Sig) > 0 && k.verify(o.Link(), o.Sig) }

// verify reports whether sig is k's signature over link.
func (k OriginKey) verify(l Link, sig []byte) bool {
	return k.pub != nil && ecdsa.VerifyASN1(k.pub, signingDigest(l), sig)
}

// signerKey returns the PKIX encoding of key's public key.
func signerKey(key crypto.Signer) (OriginKey, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return OriginKey{}, fmt.Errorf("oplog: this device's key: %w", err)
	}
	return ParseOriginKey(der)
}

// SignStatement returns key's signature over stmt, a statement other
// than an op: a domain-separated encoding whose domain is the caller's
// (wire.IntroduceStatement, wire.RevokeStatement). The signature is made
// as an op's is, over the SHA-256 of the bytes; a statement that begins
// with the op signatures' domain is refused, so no statement signature is
// ever also one over an op.
func SignStatement(key crypto.Signer, stmt []byte) ([]byte, error) {
	if err := checkStatement(stmt); err != nil {
		return nil, err
	}
	d := sha256.Sum256(stmt)
	sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("oplog: sign statement: %w", err)
	}
	if len(sig) > MaxSigLen {
		return nil, fmt.Errorf("oplog: sign statement: signature of %d bytes, over %d", len(sig), MaxSigLen)
	}
	return sig, nil
}

// VerifyStatement reports whether sig is k's signature over stmt, as
// SignStatement makes it.
func (k OriginKey) VerifyStatement(stmt, sig []byte) bool {
	if k.pub == nil || len(sig) == 0 || checkStatement(stmt) != nil {
		return false
	}
	d := sha256.Sum256(stmt)
	return ecdsa.VerifyASN1(k.pub, d[:], sig)
}

// checkStatement refuses a statement that could stand for an op's
// signing input.
func checkStatement(stmt []byte) error {
	if len(stmt) >= len(signatureDomain) && string(stmt[:len(signatureDomain)]) == signatureDomain {
		return errors.New("oplog: a statement in the op signatures' domain")
	}
	return nil
}
