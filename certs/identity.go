// Package certs holds a device's identity: an ECDSA P-256 key and a
// self-signed certificate kept in the state directory, and the DeviceID
// derived from the certificate's public key that peers pin when they pair.
//
// The key file is written with mode 0600 and replaced atomically, so a crash
// during creation leaves either no identity or a complete one.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/drive-node/drive-node/internal/durable"
)

// File names inside the state directory.
const (
	CertFile = "device-cert.pem"
	KeyFile  = "device-key.pem"
)

// Identity is this device's certificate, key and ID.
type Identity struct {
	// Certificate is ready for tls.Config.Certificates.
	Certificate tls.Certificate
	// ID is derived from Certificate's public key.
	ID DeviceID
}

// Signer returns the device's private key, which signs its TLS
// handshakes and its ops.
func (id *Identity) Signer() crypto.Signer {
	return id.Certificate.PrivateKey.(crypto.Signer)
}

// LoadOrCreate loads the identity stored in dir, creating dir and a new
// identity if there is none: no key file. An identity that exists but
// cannot be read is an error, never silently replaced: peers have pinned
// it. The key is the identity; a certificate missing, unreadable or not
// the key's is made again from the key (the device ID stays) and written.
func LoadOrCreate(dir string) (*Identity, error) {
	id, rebuilt, err := load(dir)
	if err == nil {
		if rebuilt != nil {
			if err := writeFileAtomic(filepath.Join(dir, CertFile), rebuilt, 0o600); err != nil {
				return nil, err
			}
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: create state dir %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}
	certPEM, err := selfSign(key)
	if err != nil {
		return nil, err
	}
	// The key is written last: Load treats a missing key as "no identity".
	if err := writeFileAtomic(filepath.Join(dir, CertFile), certPEM, 0o600); err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeFileAtomic(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	return Load(dir)
}

// Load reads the identity stored in dir. It returns an error wrapping
// fs.ErrNotExist when dir holds no identity (no key file). A certificate
// missing or unreadable beside the key is made again in memory; only
// LoadOrCreate writes it.
func Load(dir string) (*Identity, error) {
	id, _, err := load(dir)
	return id, err
}

// ReadID returns the device ID that dir's certificate carries, reading
// neither the private key nor anything else: a command that only shows
// the ID (status) has no use for the key. The daemon checks at every start
// that the certificate is the key's and makes it again if not, so the ID
// is that of the device that last ran from dir.
func ReadID(dir string) (DeviceID, error) {
	certPath := filepath.Join(dir, CertFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return DeviceID{}, fmt.Errorf("certs: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return DeviceID{}, fmt.Errorf("certs: parse %s: no PEM certificate", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return DeviceID{}, fmt.Errorf("certs: parse %s: %w", certPath, err)
	}
	return DeviceIDFromCertificate(cert), nil
}

// load reads the identity stored in dir. When the certificate had to be
// made again from the key, rebuilt is its PEM, to be written.
func load(dir string) (id *Identity, rebuilt []byte, err error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: parse %s: %w", keyPath, err)
	}
	if certPEM, err := os.ReadFile(certPath); err == nil {
		if id, err := identity(certPEM, keyPEM); err == nil {
			return id, nil, nil
		}
	}
	// The certificate is missing, unreadable or not the key's.
	certPEM, err := selfSign(key)
	if err != nil {
		return nil, nil, err
	}
	id, err = identity(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: certificate made again from %s: %w", keyPath, err)
	}
	return id, certPEM, nil
}

func identity(certPEM, keyPEM []byte) (*Identity, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	pair.Leaf = leaf
	return &Identity{Certificate: pair, ID: DeviceIDFromCertificate(leaf)}, nil
}

// parseKey reads a PEM private key as this package writes it (PKCS #8),
// or in SEC 1 form.
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM data")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return signer, nil
}

// selfSign returns the PEM of a new self-signed certificate for key.
func selfSign(key crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "drive-node"},
		DNSNames:     []string{"drive-node"},
		NotBefore:    now.Add(-24 * time.Hour),
		// Trust comes from the pinned key, not from the validity period;
		// a long one keeps a box that is left alone for years working.
		NotAfter:              now.AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certs: self-sign: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// writeFileAtomic writes a file of the identity durably (see package
// durable), naming it in the error as certs'.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := durable.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
