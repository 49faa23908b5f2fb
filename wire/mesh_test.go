package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/drive-node/drive-node/certs"
)

// The largest Introduce fits in a frame and reads back; encoders refuse
// what decoders refuse.
func TestMeshFramesBounds(t *testing.T) {
	big := &Introduce{Sig: make([]byte, MaxMeshSig)}
	for i := range MaxMembers {
		var id certs.DeviceID
		id[0], id[1] = byte(i), byte(i>>8)+1
		big.Members = append(big.Members, Member{ID: id, Name: strings.Repeat("é", MaxMemberName/2)})
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, big); err != nil {
		t.Fatalf("largest introduce: %v", err)
	}
	if m, err := ReadFrame(&buf); err != nil || len(m.(*Introduce).Members) != MaxMembers {
		t.Fatalf("largest introduce read back: %v", err)
	}
	for name, m := range map[string]Message{
		"too many members":   &Introduce{Members: append(big.Members, Member{ID: dev(1)}), Sig: []byte{1}},
		"zero member":        &Introduce{Members: []Member{{}}, Sig: []byte{1}},
		"long name":          &Introduce{Members: []Member{{ID: dev(1), Name: strings.Repeat("a", MaxMemberName+1)}}, Sig: []byte{1}},
		"control in name":    &Introduce{Members: []Member{{ID: dev(1), Name: "a\nb"}}, Sig: []byte{1}},
		"not UTF-8":          &Introduce{Members: []Member{{ID: dev(1), Name: "\xff"}}, Sig: []byte{1}},
		"no signature":       &Introduce{},
		"long signature":     &Revoke{ID: dev(1), Sig: make([]byte, MaxMeshSig+1)},
		"revoke of the zero": &Revoke{Sig: []byte{1}},
	} {
		if err := WriteFrame(&bytes.Buffer{}, m); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	// A decoder refusal is ErrMalformed, naming the message.
	_, err := Decode(TypeRevoke, make([]byte, 33))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "revoke") {
		t.Fatalf("revoke of the zero device: %v", err)
	}
}

// Statements are domain-separated: an introduction of nobody and a
// revocation never share bytes, and each names its sender.
func TestMeshStatements(t *testing.T) {
	in := IntroduceStatement(dev(1), nil)
	rv := RevokeStatement(dev(1), dev(2))
	if !bytes.HasPrefix(in, []byte("drive-node introduce 1\x00")) || !bytes.HasPrefix(rv, []byte("drive-node revoke 1\x00")) {
		t.Fatalf("statements without their domains: %q %q", in, rv)
	}
	if bytes.Equal(IntroduceStatement(dev(1), nil), IntroduceStatement(dev(2), nil)) {
		t.Fatal("the sender is not in the introduction statement")
	}
	a := IntroduceStatement(dev(1), []Member{{ID: dev(2), Name: "ab"}})
	b := IntroduceStatement(dev(1), []Member{{ID: dev(2), Name: "a"}})
	if bytes.Equal(a, b) {
		t.Fatal("names are not in the introduction statement")
	}
}
