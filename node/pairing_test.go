package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/drive-node/drive-node/pairing"
)

// Invite on one running node, join on another: both are paired with each
// other (with names), they connect and sync, and unpairing drops the
// connection at once, after which the unpaired device is listed among the
// refused ones.
func TestInviteJoinSyncUnpair(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	na, nb, addrA, iv := invitingNodes(t, ctx)
	a, b := na.folder, nb.folder
	res, err := nb.Join(ctx, iv.Code(), []string{addrA})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if res.ID != na.ID() || res.Name != filepath.Base(a) {
		t.Fatalf("joined %+v, want %s named %s", res, na.ID().Short(), filepath.Base(a))
	}
	got, err := iv.Wait(ctx)
	if err != nil || got.ID != nb.ID() || got.Name != filepath.Base(b) {
		t.Fatalf("invite: %+v, %v; want %s", got, err, nb.ID().Short())
	}
	for _, n := range []*runningNode{na, nb} {
		l, err := n.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Paired) != 1 {
			t.Fatalf("%s: %d paired devices, want 1", n.folder, len(l.Paired))
		}
	}
	write(t, filepath.Join(a, "hello.txt"), "paired in one step")
	waitFor(t, "sync after join", func() string { return sameTree(a, b) })

	if err := na.Unpair(ctx, nb.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "connection dropped", func() string {
		if na.tr.Connected(nb.ID()) {
			return "a still connected to b"
		}
		return ""
	})
	// b dials again and is refused: a lists it, ready to pair by its ID.
	waitFor(t, "refused device listed", func() string {
		l, err := na.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		if len(l.Paired) != 0 {
			return fmt.Sprintf("%d paired", len(l.Paired))
		}
		for _, d := range l.Unpaired {
			if d.ID == nb.ID().String() {
				return ""
			}
		}
		return "b not among the refused devices"
	})
	if na.tr.Connected(nb.ID()) {
		t.Fatal("unpaired device connected again")
	}
}

// invitingNodes starts two unpaired nodes, the first with an open invite.
func invitingNodes(t *testing.T, ctx context.Context) (na, nb *runningNode, addrA string, iv *pairing.Invite) {
	t.Helper()
	addrA = freeUDPPort(t)
	na = startNode(t, t.TempDir(), addrA)
	nb = startNode(t, t.TempDir(), freeUDPPort(t))
	iv, err := na.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return na, nb, addrA, iv
}

// A wrong code fails on both sides, pairs nobody and burns the invite.
func TestJoinWrongCodeBurnsInvite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	na, nb, addrA, iv := invitingNodes(t, ctx)
	wrong := iv.Code()
	wrong.Words[0], wrong.Words[1] = wrong.Words[1], wrong.Words[0]
	if wrong == iv.Code() {
		wrong.Words[0] = map[bool]string{true: "acrobat", false: "academy"}[wrong.Words[0] == "academy"]
	}
	if _, err := nb.Join(ctx, wrong, []string{addrA}); !errors.Is(err, pairing.ErrWrongCode) {
		t.Fatalf("join with a wrong code: %v, want ErrWrongCode", err)
	}
	if _, err := iv.Wait(ctx); !errors.Is(err, pairing.ErrWrongCode) {
		t.Fatalf("invite after a wrong code: %v, want ErrWrongCode", err)
	}
	if _, err := nb.Join(ctx, iv.Code(), []string{addrA}); err == nil {
		t.Fatal("the right code worked after a wrong one")
	}
	for _, n := range []*runningNode{na, nb} {
		if l, err := n.Peers(ctx); err != nil || len(l.Paired) != 0 {
			t.Fatalf("%s: paired %v, %v; want none", n.folder, l.Paired, err)
		}
	}
}

// Without daemons: a PairingHost invites, another joins at its address.
func TestPairingHostsWithoutDaemon(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := t.TempDir(), t.TempDir()
	ha, err := OpenPairing(ctx, PairingConfig{Folder: a, StateDir: DefaultStateDir(a, ""), Name: "a", Listen: "127.0.0.1:0", NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := OpenPairing(ctx, PairingConfig{Folder: b, StateDir: DefaultStateDir(b, ""), Name: "b", NoDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	iv, err := ha.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hb.Join(ctx, iv.Code(), []string{ha.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	if r, err := iv.Wait(ctx); err != nil || r.Name != "b" {
		t.Fatalf("invite: %+v, %v", r, err)
	}
	for _, dir := range []string{a, b} {
		l, err := ReadPeers(ctx, DefaultStateDir(dir, ""))
		if err != nil || len(l.Paired) != 1 {
			t.Fatalf("%s: %+v, %v; want one paired device", dir, l, err)
		}
	}
}

// notesDB counts the refused devices recorded.
type notesDB struct{ notes []certs.DeviceID }

func (d *notesDB) PairByCode(context.Context, certs.DeviceID, string) error { return nil }
func (d *notesDB) NoteUnpaired(_ context.Context, id certs.DeviceID, _ string, _ int64) error {
	d.notes = append(d.notes, id)
	return nil
}

// Refused devices are recorded at most once a minute each and ten times a
// second in all: a flood of handshakes makes few database writes.
func TestNoteUnpairedBounded(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	db := &notesDB{}
	p := &pairer{ctx: context.Background(), db: db, clk: clk, log: slog.New(slog.DiscardHandler)}
	one, two := certs.DeviceID{1}, certs.DeviceID{2}
	p.noteUnpaired(one, "a")
	p.noteUnpaired(one, "a") // same device, at once
	p.noteUnpaired(two, "b") // another, within 100 ms
	clk.Advance(unpairedNoteSpacing)
	p.noteUnpaired(two, "b")
	p.noteUnpaired(one, "a") // within 100 ms of two, within a minute of its last
	clk.Advance(unpairedNoteEvery)
	p.noteUnpaired(one, "a")
	if want := []certs.DeviceID{one, two, one}; fmt.Sprint(db.notes) != fmt.Sprint(want) {
		t.Fatalf("recorded %v, want %v", db.notes, want)
	}
}
