package oplog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"sync"
	"testing"

	"github.com/drive-node/drive-node/certs"
)

// testKeys are the keys of the test devices dev(1), dev(2), …: made once
// per test binary, as P-256 keys take a while to make.
var testKeys struct {
	sync.Mutex
	byte map[byte]*ecdsa.PrivateKey
	id   map[certs.DeviceID]*ecdsa.PrivateKey
}

// testKey returns test device b's key.
func testKey(b byte) *ecdsa.PrivateKey {
	testKeys.Lock()
	defer testKeys.Unlock()
	if k, ok := testKeys.byte[b]; ok {
		return k
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	if testKeys.byte == nil {
		testKeys.byte, testKeys.id = map[byte]*ecdsa.PrivateKey{}, map[certs.DeviceID]*ecdsa.PrivateKey{}
	}
	testKeys.byte[b], testKeys.id[keyID(k)] = k, k
	return k
}

func keyID(k *ecdsa.PrivateKey) certs.DeviceID {
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		panic(err)
	}
	return certs.DeviceIDFromDER(der)
}

// dev returns test device b's ID.
func dev(b byte) certs.DeviceID { return keyID(testKey(b)) }

// trust has l take the ops of test device b, on b's own word.
func trust(t testing.TB, l *Log, b byte) {
	t.Helper()
	k, err := signerKey(testKey(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AddOrigin(context.Background(), k, k.ID); err != nil {
		t.Fatal(err)
	}
}

// signed seals ops, consecutive ops of one test device, as that device
// would: chained after the op l holds before the first (if any) and the
// last signed. The device's key is added to l.
func signed(t testing.TB, l *Log, ops ...Op) []Op {
	t.Helper()
	if len(ops) == 0 {
		return ops
	}
	origin := ops[0].Origin
	testKeys.Lock()
	key := testKeys.id[origin]
	testKeys.Unlock()
	if key == nil {
		t.Fatalf("no test key for %s", origin.Short())
	}
	k, _ := signerKey(key)
	if err := l.AddOrigin(context.Background(), k, k.ID); err != nil {
		t.Fatal(err)
	}
	var prev Link
	if seq := ops[0].Seq; seq > 1 {
		if before, ok, err := l.Get(origin, seq-1); err != nil {
			t.Fatal(err)
		} else if ok {
			prev = before.Link()
		}
	}
	out := append([]Op(nil), ops...)
	if _, err := Seal(key, prev, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// signedBy seals ops as test device b would, after prev.
func signedBy(t testing.TB, b byte, prev Link, ops ...Op) []Op {
	t.Helper()
	out := append([]Op(nil), ops...)
	if _, err := Seal(testKey(b), prev, out); err != nil {
		t.Fatal(err)
	}
	return out
}
