package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/quicnet"
	"github.com/drive-node/drive-node/state"
	"github.com/drive-node/drive-node/wire"
)

// The mesh (docs/pairing.md): a device paired by code (invite, join) or
// by a mesh member's introduction is a mesh member. Each session with a
// mesh member sends it, when it starts and whenever the set of this
// device's mesh members or revocations changes, an Introduce naming this
// device's other mesh members and a Revoke for each device this device
// unpaired. Both are signed with this device's identity key; the
// receiver checks the signature against the key the connection showed.

// maxRevokesSent bounds the Revoke frames a session sends at a time: this
// device's most recent revocations.
const maxRevokesSent = 256

// errBadSignature is wrapped by the refusal of an introduction or a
// revocation whose signature is not the sender's.
var errBadSignature = errors.New("signature does not verify with the sender's key")

// meshState tells the sessions' senders that the mesh changed.
type meshState struct {
	gen   atomic.Uint64 // advanced at each change
	watch logWatch
}

// changed records a change of this device's mesh members or
// revocations: every session with a mesh member sends again.
func (m *meshState) changed() {
	m.gen.Add(1)
	m.watch.notify()
}

// meshMessages returns what the session with peer sends it for the mesh:
// nothing unless peer is a mesh member here; else an Introduce of this
// device's other mesh members (at most wire.MaxMembers) and a Revoke for
// each of this device's most recent revocations.
func (n *Node) meshMessages(ctx context.Context, peer certs.DeviceID) ([]wire.Message, error) {
	row, ok, err := n.db.Peer(ctx, peer)
	if err != nil || !ok || !row.PairedBy.Mesh() {
		return nil, err
	}
	peers, err := n.db.Peers(ctx)
	if err != nil {
		return nil, err
	}
	var members []wire.Member
	for _, p := range peers {
		if p.ID == peer || p.ID == n.id.ID || !p.PairedBy.Mesh() || len(members) == wire.MaxMembers {
			continue
		}
		members = append(members, wire.Member{ID: p.ID, Name: memberName(p.Name)})
	}
	sig, err := oplog.SignStatement(n.id.Signer(), wire.IntroduceStatement(n.id.ID, members))
	if err != nil {
		return nil, err
	}
	out := []wire.Message{&wire.Introduce{Members: members, Sig: sig}}
	revoked, err := n.db.Revocations(ctx, maxRevokesSent)
	if err != nil {
		return nil, err
	}
	for _, id := range revoked {
		sig, err := oplog.SignStatement(n.id.Signer(), wire.RevokeStatement(n.id.ID, id))
		if err != nil {
			return nil, err
		}
		out = append(out, &wire.Revoke{ID: id, Sig: sig})
	}
	return out, nil
}

// memberName is name as an Introduce can carry it: cut to
// wire.MaxMemberName bytes on a character boundary, control characters
// dropped.
func memberName(name string) string {
	b := make([]byte, 0, len(name))
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			continue
		}
		if len(b)+len(string(r)) > wire.MaxMemberName {
			break
		}
		b = append(b, string(r)...)
	}
	return string(b)
}

// meshSpeaker checks that peer may speak for the mesh here (it is a mesh
// member) and that sig is its signature over stmt, with the key its
// connection showed.
func (n *Node) meshSpeaker(ctx context.Context, p *quicnet.Peer, stmt, sig []byte) error {
	row, ok, err := n.db.Peer(ctx, p.ID)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: %w", state.ErrNotMeshMember, state.ErrNotPaired)
	case !row.PairedBy.Mesh():
		return fmt.Errorf("paired by %s: %w", row.PairedBy, state.ErrNotMeshMember)
	}
	key, err := oplog.ParseOriginKey(p.PublicKey())
	if err != nil {
		return err
	}
	if !key.VerifyStatement(stmt, sig) {
		return errBadSignature
	}
	return nil
}

// takeIntroduction pairs, as introduced by p, the devices p's Introduce
// names that are neither paired nor revoked here, if p is a mesh member
// and signed it. It returns the devices it paired.
func (n *Node) takeIntroduction(ctx context.Context, p *quicnet.Peer, m *wire.Introduce) ([]certs.DeviceID, error) {
	stmt := wire.IntroduceStatement(p.ID, m.Members)
	if err := n.meshSpeaker(ctx, p, stmt, m.Sig); err != nil {
		return nil, fmt.Errorf("introduction from %s refused: %w", p.ID.Short(), err)
	}
	devices := make([]state.Introduced, 0, len(m.Members))
	for _, mb := range m.Members {
		if mb.ID != n.id.ID && mb.ID != p.ID {
			devices = append(devices, state.Introduced{ID: mb.ID, Name: mb.Name})
		}
	}
	added, err := n.db.PairIntroduced(ctx, p.ID, devices, stmt, m.Sig)
	if err != nil {
		return nil, fmt.Errorf("introduction from %s: %w", p.ID.Short(), err)
	}
	for _, id := range added {
		n.log.Info("paired by introduction", "peer", id.String(), "by", p.ID.String())
	}
	if len(added) > 0 {
		// Discovery looks for them at once: a paired device is missing.
		n.mesh.changed()
	}
	return added, nil
}

// takeRevoke carries out p's Revoke, if p is a mesh member and signed
// it: a device paired here by introduction is unpaired and its connection
// dropped at once; none is paired by an introduction again. It reports
// whether the device was unpaired.
func (n *Node) takeRevoke(ctx context.Context, p *quicnet.Peer, m *wire.Revoke) (bool, error) {
	stmt := wire.RevokeStatement(p.ID, m.ID)
	if err := n.meshSpeaker(ctx, p, stmt, m.Sig); err != nil {
		return false, fmt.Errorf("revocation of %s from %s refused: %w", m.ID.Short(), p.ID.Short(), err)
	}
	if m.ID == n.id.ID || m.ID == p.ID {
		return false, nil // no device revokes itself or its receiver here
	}
	unpaired, err := n.db.RevokeIntroduced(ctx, p.ID, m.ID, stmt, m.Sig)
	if err != nil {
		return false, fmt.Errorf("revocation of %s from %s: %w", m.ID.Short(), p.ID.Short(), err)
	}
	if unpaired {
		n.log.Info("unpaired on a mesh member's revocation", "peer", m.ID.String(), "by", p.ID.String())
		if n.pairer.Load() != nil && n.tr.Disconnect(m.ID, "revoked") {
			n.log.Info("revoked; connection closed", "peer", m.ID.String())
		}
		n.mesh.changed()
	}
	return unpaired, nil
}
