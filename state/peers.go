package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/drive-node/drive-node/certs"
)

// ErrNotPaired is wrapped by the errors of calls about a device that is not
// paired.
var ErrNotPaired = errors.New("device is not paired")

// Peer is a paired device and what the daemon last knew about it.
type Peer struct {
	// ID is the device's ID, pinned when it was paired.
	ID certs.DeviceID
	// Name is a name for people, "" if none was given.
	Name string
	// Addresses are the last known addresses (host:port) of the device.
	Addresses []string
	// LastSeen is when the device was last connected, in unix ns; 0 means
	// never.
	LastSeen int64
	// Connected tells whether the daemon is connected to the device.
	Connected bool
	// Address is the current connection's remote address if Connected.
	Address string
	// Behind is how many ops the peer is known to lack, as maintained by
	// the daemon.
	Behind uint64
	// Error is the last sync problem with the device, "" if none.
	Error string
	// PairedAt is when the device was first paired, in unix ns.
	PairedAt int64
	// PairedBy is how the device was paired: a device paired by code or
	// by introduction is a mesh member.
	PairedBy PairedBy
	// IntroducedBy is the mesh member whose introduction paired the
	// device, zero unless PairedBy is PairedByIntroduction.
	IntroducedBy certs.DeviceID
}

const peerColumns = `peers.id, peers.name, peers.addresses, peers.last_seen_ns, peers.connected, peers.address, peers.behind,
	peers.error, peers.paired_ns, peers.paired_by, coalesce(introductions.introducer, x'')`

// peersFrom is the FROM clause that peerColumns read.
const peersFrom = ` FROM peers LEFT JOIN introductions ON introductions.id = peers.introduction`

func scanPeer(s scanner) (Peer, error) {
	var (
		p      Peer
		id     []byte
		addrs  string
		behind int64
		by     []byte
	)
	if err := s.Scan(&id, &p.Name, &addrs, &p.LastSeen, &p.Connected, &p.Address, &behind, &p.Error, &p.PairedAt, &p.PairedBy, &by); err != nil {
		return p, err
	}
	var err error
	if p.ID, err = scanID(id); err != nil {
		return p, fmt.Errorf("peer: %w", err)
	}
	if len(by) > 0 {
		if p.IntroducedBy, err = scanID(by); err != nil {
			return p, fmt.Errorf("peer %s: introducer: %w", p.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(addrs), &p.Addresses); err != nil {
		return p, fmt.Errorf("peer %s: addresses: %w", p.ID, err)
	}
	if len(p.Addresses) == 0 {
		p.Addresses = nil
	}
	p.Behind = fromU64(behind)
	return p, nil
}

// Pair records id as paired by hand (PairedByHand), on disk when it
// returns. Pairing a paired device keeps its row, replaces its name if
// name is not "", and records it as paired by hand: the last explicit
// pairing says how a device was paired. PairedAt is set when the device
// is first paired. A revocation of id (see Revoked) is forgotten.
func (db *DB) Pair(ctx context.Context, id certs.DeviceID, name string) error {
	return db.pair(ctx, id, name, PairedByHand)
}

// PairByCode is Pair for a device paired by a one-time code (invite or
// join), which makes it a mesh member (PairedByCode).
func (db *DB) PairByCode(ctx context.Context, id certs.DeviceID, name string) error {
	return db.pair(ctx, id, name, PairedByCode)
}

func (db *DB) pair(ctx context.Context, id certs.DeviceID, name string, by PairedBy) error {
	err := db.writeSynced(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO peers (id, name, paired_ns, paired_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE name END,
				paired_by = excluded.paired_by, introduction = NULL`,
			id[:], name, time.Now().UnixNano(), by)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM revoked WHERE id = ?`, id[:]); err != nil {
			return err
		}
		return dropUnusedIntroductions(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("state: %s: pair %s: %w", db.path, id, err)
	}
	return nil
}

// Unpair forgets the paired device id and its progress, on disk when it
// returns, and records it as revoked by this device (see Revoked), so no
// introduction pairs it again; pairing it explicitly does. It returns an
// error wrapping ErrNotPaired if id is not paired.
func (db *DB) Unpair(ctx context.Context, id certs.DeviceID) error {
	err := db.writeSynced(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM peers WHERE id = ?`, id[:])
		if err != nil {
			return err
		}
		if err := requireRow(res); err != nil {
			return err
		}
		if err := revoke(ctx, tx, id, certs.DeviceID{}, nil, nil); err != nil {
			return err
		}
		return dropUnusedIntroductions(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("state: %s: unpair %s: %w", db.path, id, err)
	}
	return nil
}

// requireRow returns ErrNotPaired if res affected no row.
func requireRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotPaired
	}
	return nil
}

// IsPaired reports whether id is paired.
func (db *DB) IsPaired(ctx context.Context, id certs.DeviceID) (bool, error) {
	ok, err := db.holds(ctx, `SELECT 1 FROM peers WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("state: %s: look up peer %s: %w", db.path, id, err)
	}
	return ok, nil
}

// holds reports whether query, given id, returns a row.
func (db *DB) holds(ctx context.Context, query string, id certs.DeviceID) (bool, error) {
	var one int
	err := db.sql.QueryRowContext(ctx, query, id[:]).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// Peers returns the paired devices ordered by the string form of their ID.
func (db *DB) Peers(ctx context.Context) ([]Peer, error) {
	peers, err := db.peers(ctx)
	if err != nil {
		return nil, fmt.Errorf("state: %s: list peers: %w", db.path, err)
	}
	keys := make(map[certs.DeviceID]string, len(peers))
	for _, p := range peers {
		keys[p.ID] = p.ID.String()
	}
	sort.Slice(peers, func(i, j int) bool { return keys[peers[i].ID] < keys[peers[j].ID] })
	return peers, nil
}

func (db *DB) peers(ctx context.Context) ([]Peer, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+peerColumns+peersFrom)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Peer
	for rows.Next() {
		p, err := scanPeer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// Peer returns the paired device id; ok is false if it is not paired.
func (db *DB) Peer(ctx context.Context, id certs.DeviceID) (p Peer, ok bool, err error) {
	p, err = scanPeer(db.sql.QueryRowContext(ctx, `SELECT `+peerColumns+peersFrom+` WHERE peers.id = ?`, id[:]))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Peer{}, false, nil
	case err != nil:
		return Peer{}, false, fmt.Errorf("state: %s: read peer %s: %w", db.path, id, err)
	}
	return p, true, nil
}

// UpdatePeerStatus stores p's Addresses, LastSeen, Connected, Address,
// Behind and Error in the row of the paired device p.ID; Name and PairedAt
// are left alone. It returns an error wrapping ErrNotPaired if p.ID is not
// paired: status never creates a pairing.
func (db *DB) UpdatePeerStatus(ctx context.Context, p Peer) error {
	addrs := p.Addresses
	if addrs == nil {
		addrs = []string{}
	}
	js, err := json.Marshal(addrs)
	if err != nil {
		return fmt.Errorf("state: %s: update peer %s: addresses: %w", db.path, p.ID, err)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE peers SET addresses = ?, last_seen_ns = ?, connected = ?, address = ?,
			behind = ?, error = ? WHERE id = ?`,
			string(js), p.LastSeen, boolInt(p.Connected), p.Address, u64(p.Behind), p.Error, p.ID[:])
		if err != nil {
			return err
		}
		return requireRow(res)
	})
	if err != nil {
		return fmt.Errorf("state: %s: update peer %s: %w", db.path, p.ID, err)
	}
	return nil
}

// SetPeerProgress records that peer is known to have origin's op log up
// to seq. The recorded value is only ever raised. It returns an error
// wrapping ErrNotPaired if peer is not paired.
func (db *DB) SetPeerProgress(ctx context.Context, peer, origin certs.DeviceID, seq uint64) error {
	return db.SetPeerProgresses(ctx, peer, map[certs.DeviceID]uint64{origin: seq})
}

// SetPeerProgresses is SetPeerProgress for every origin of have, in one
// transaction.
func (db *DB) SetPeerProgresses(ctx context.Context, peer certs.DeviceID, have map[certs.DeviceID]uint64) error {
	if len(have) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM peers WHERE id = ?`, peer[:]).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotPaired
		}
		if err != nil {
			return err
		}
		for origin, seq := range have {
			if _, _, err := raise(ctx, tx, "peer_progress", "peer", peer[:], origin, seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: %s: set progress of peer %s: %w", db.path, peer, err)
	}
	return nil
}

// PeerProgress returns, per origin, how far into origin's op log peer is
// known to have. It is empty (never nil) for an unknown peer.
func (db *DB) PeerProgress(ctx context.Context, peer certs.DeviceID) (map[certs.DeviceID]uint64, error) {
	out, err := seqMap(ctx, db.sql, `SELECT origin, seq FROM peer_progress WHERE peer = ?`, peer[:])
	if err != nil {
		return nil, fmt.Errorf("state: %s: read progress of peer %s: %w", db.path, peer, err)
	}
	return out, nil
}

// ResetPeerStatus marks every peer as not connected, with no current
// address. The daemon calls it when it starts, as connections do not
// survive it.
func (db *DB) ResetPeerStatus(ctx context.Context) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE peers SET connected = 0, address = '' WHERE connected <> 0 OR address <> ''`)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: %s: reset peer status: %w", db.path, err)
	}
	return nil
}
