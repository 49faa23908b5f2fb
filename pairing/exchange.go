// Package pairing pairs two devices in one step with a one-time code that
// a person reads from one screen and types on the other (docs/pairing.md).
//
// The inviting device holds an Invite; the joining device calls Join with
// the code. Over a channel that is already encrypted and carries both
// devices' certificates (a TLS 1.3 connection), the two run a
// password-authenticated key exchange (SPAKE2 on P-256, package
// github.com/schollz/pake/v3) keyed by the code, derive confirmation keys
// with HKDF from its session key, the transcript and the TLS channel's
// exported keying material, and each sends an HMAC over both device IDs
// and its own name.
//
// Guarantees:
//   - Each side learns the other's device ID and name only when the other
//     proved it knows the code, over this very TLS channel: a device in the
//     middle (which has a TLS channel of its own with each side) or one that
//     replays messages of another exchange pairs with nothing.
//   - An Invite serves at most one exchange at a time, and one that got as
//     far as the key exchange ends it: a wrong code, a broken or tampered
//     message, or a connection that drops burns the invite, so every
//     invite allows one guess. It also ends when it expires.
//   - Every read and write has the deadline of the caller's context;
//     messages are at most maxMessage bytes.
package pairing

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
	"github.com/schollz/pake/v3"
)

// Version is the version of the exchange, sent in the joiner's first
// message.
const Version = 1

// curve is the PAKE's curve.
const curve = "p256"

// maxMessage bounds one message of the exchange.
const maxMessage = 4096

// MaxName bounds a device name sent in the exchange, in bytes.
const MaxName = 256

// TTL is how long an invite stays open by default.
const TTL = 10 * time.Minute

// ExporterLabel is the TLS exporter label whose 32 bytes of keying
// material bind the exchange to its channel.
const ExporterLabel = "EXPORTER-drive-node-pair/1"

// Errors of the exchange, wrapped by what Join and Answer return.
var (
	// ErrWrongCode: the other device does not know the code (a mistyped
	// code, or a device in the middle). The invite is burnt.
	ErrWrongCode = errors.New("wrong pairing code (the invite is used up: start a new one)")
	// ErrExpired: the invite expired before anyone joined.
	ErrExpired = errors.New("the invite expired")
	// ErrClosed: the invite was used, burnt or expired.
	ErrClosed = errors.New("no open invite")
	// ErrCancelled: the invite was cancelled (a newer one replaced it, or
	// the command waiting on it stopped).
	ErrCancelled = errors.New("the invite was cancelled")
	// ErrBusy: another device is joining this invite right now.
	ErrBusy = errors.New("another device is joining this invite")
	// ErrNoInvite: the other device holds no open invite with this code's
	// number.
	ErrNoInvite = errors.New("no open invite with this number")
	// ErrProtocol: a message was malformed.
	ErrProtocol = errors.New("pairing: protocol error")
)

// Channel is what the exchange knows of the secure channel it runs over.
type Channel struct {
	// Self is this device; Peer is the device whose certificate the
	// channel's handshake presented.
	Self, Peer certs.DeviceID
	// Exporter is keying material exported from the channel with
	// ExporterLabel: equal on both ends of one TLS session, different on
	// any other.
	Exporter []byte
}

// Result is the device paired by a successful exchange.
type Result struct {
	ID   certs.DeviceID `json:"id"`
	Name string         `json:"name,omitempty"`
}

// The messages, in order: hello (joiner), reply (inviter), the joiner's
// confirm, the inviter's confirm.
type hello struct {
	V    int    `json:"v"`
	Slot int    `json:"slot"`
	Pake []byte `json:"pake"`
}

type reply struct {
	Pake  []byte `json:"pake,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"` // a refusal's kind: "no-invite", "busy", "closed", "expired", "wrong-code"
}

type confirm struct {
	Name  string `json:"name,omitempty"`
	MAC   []byte `json:"mac,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

// refusals lists a refusal's kinds and their errors.
func refusals() map[string]error {
	return map[string]error{"no-invite": ErrNoInvite, "busy": ErrBusy, "closed": ErrClosed, "expired": ErrExpired, "wrong-code": ErrWrongCode}
}

func refusalCode(err error) string {
	for k, e := range refusals() {
		if errors.Is(err, e) {
			return k
		}
	}
	return "error"
}

func refusalErr(code, msg string) error {
	if e, ok := refusals()[code]; ok {
		return fmt.Errorf("the other device refused: %w", e)
	}
	return fmt.Errorf("the other device refused: %s: %w", msg, ErrProtocol)
}

// Invite is one open invitation: a code, valid until it expires, for one
// successful join. It is safe for concurrent use.
type Invite struct {
	code    Code
	name    string
	expires time.Time
	clk     clock.Clock

	mu     sync.Mutex
	busy   bool
	closed bool
	result Result
	err    error
	done   chan struct{}
}

// NewInvite opens an invite with a fresh code for ttl (TTL if zero),
// answering with name. clk dates it (nil: the system clock).
func NewInvite(clk clock.Clock, ttl time.Duration, name string) (*Invite, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	code, err := NewCode()
	if err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = TTL
	}
	clk = clock.Or(clk)
	return &Invite{code: code, name: name, expires: clk.Now().Add(ttl), clk: clk, done: make(chan struct{})}, nil
}

// Code is the invite's code.
func (iv *Invite) Code() Code { return iv.code }

// Expires is when the invite ends if nobody joins.
func (iv *Invite) Expires() time.Time { return iv.expires }

// Open reports whether the invite may still be joined.
func (iv *Invite) Open() bool {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return !iv.closed && iv.clk.Now().Before(iv.expires)
}

// Done is closed when the invite ends: joined, burnt, expired (once Wait
// noticed) or cancelled.
func (iv *Invite) Done() <-chan struct{} { return iv.done }

// Cancel ends the invite unless it has ended already.
func (iv *Invite) Cancel() { iv.finish(Result{}, ErrCancelled) }

// finish ends the invite with its outcome, unless it has ended already.
func (iv *Invite) finish(r Result, err error) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	iv.busy = false
	if iv.closed {
		return
	}
	iv.closed, iv.result, iv.err = true, r, err
	close(iv.done)
}

// Wait waits until the invite ends, ctx ends or it expires, and returns
// the device that joined, or why none did.
func (iv *Invite) Wait(ctx context.Context) (Result, error) {
	left := iv.expires.Sub(iv.clk.Now())
	var expired <-chan time.Time
	if left <= 0 {
		now := make(chan time.Time, 1)
		now <- iv.expires
		expired = now
	} else {
		t := iv.clk.NewTimer(left)
		defer t.Stop()
		expired = t.C()
	}
	select {
	case <-iv.done:
	case <-expired:
		iv.mu.Lock()
		busy := iv.busy
		iv.mu.Unlock()
		if busy {
			// An exchange that started in time is let finish: its own
			// deadline bounds it.
			select {
			case <-iv.done:
			case <-ctx.Done():
				return Result{}, ctx.Err()
			}
		}
		iv.finish(Result{}, ErrExpired)
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return iv.result, iv.err
}

// take reserves the invite for one exchange.
func (iv *Invite) take(slot int) error {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	switch {
	case slot != iv.code.Slot:
		return ErrNoInvite
	case iv.closed:
		return ErrClosed
	case !iv.clk.Now().Before(iv.expires):
		return ErrExpired
	case iv.busy:
		return ErrBusy
	}
	iv.busy = true
	return nil
}

// Answer serves one joiner over rw, a stream of the channel ch, and
// returns the device that joined. Once the joiner's first message named
// this invite and it was free, the invite ends with this exchange: paired
// on success, burnt on any failure (see the package's guarantees).
// accept, if not nil, is called with the joiner once it proved it knows
// the code, before the joiner hears that it is accepted; an error from it
// fails the exchange.
func (iv *Invite) Answer(ctx context.Context, rw io.ReadWriter, ch Channel, accept func(Result) error) (res Result, err error) {
	stop := deadline(ctx, rw)
	defer stop()
	var h hello
	if err := readMsg(rw, &h); err != nil {
		return Result{}, fmt.Errorf("pairing with %s: %w", ch.Peer.Short(), err)
	}
	if h.V != Version {
		writeMsg(rw, reply{Error: fmt.Sprintf("exchange version %d, this device speaks %d", h.V, Version)})
		return Result{}, fmt.Errorf("pairing with %s: exchange version %d, want %d: %w", ch.Peer.Short(), h.V, Version, ErrProtocol)
	}
	if err := iv.take(h.Slot); err != nil {
		writeMsg(rw, reply{Error: err.Error(), Code: refusalCode(err)})
		return Result{}, fmt.Errorf("pairing with %s: %w", ch.Peer.Short(), err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("pairing with %s: %w", ch.Peer.Short(), err)
		}
		iv.finish(res, err)
	}()
	p, err := pake.InitCurve(iv.code.password(), 1, curve)
	if err != nil {
		return Result{}, fmt.Errorf("key exchange: %w", err)
	}
	if err := update(p, h.Pake); err != nil {
		return Result{}, err
	}
	mine := p.Bytes()
	if err := writeMsg(rw, reply{Pake: mine}); err != nil {
		return Result{}, err
	}
	keys, err := deriveKeys(p, h.Slot, h.Pake, mine, ch.Exporter)
	if err != nil {
		return Result{}, err
	}
	c, err := keys.read(rw, roleJoiner, ch)
	if errors.Is(err, ErrWrongCode) {
		writeMsg(rw, confirm{Error: ErrWrongCode.Error(), Code: "wrong-code"})
	}
	if err != nil {
		return Result{}, err
	}
	res = Result{ID: ch.Peer, Name: c.Name}
	// The joiner proved it knows the code: it is paired (accept) before
	// it hears so, and whether or not this last message reaches it.
	if accept != nil {
		if err := accept(res); err != nil {
			writeMsg(rw, confirm{Error: "the inviting device failed to record the pairing"})
			return Result{}, err
		}
	}
	writeMsg(rw, confirm{Name: iv.name, MAC: keys.mac(roleInviter, ch.Self, ch.Peer, iv.name)})
	return res, nil
}

// Join runs the joiner's side of the exchange over rw, a stream of the
// channel ch, with code, sending name, and returns the inviting device.
func Join(ctx context.Context, rw io.ReadWriter, ch Channel, code Code, name string) (Result, error) {
	if err := checkName(name); err != nil {
		return Result{}, err
	}
	res, err := join(ctx, rw, ch, code, name)
	if err != nil {
		return Result{}, fmt.Errorf("pairing with %s: %w", ch.Peer.Short(), err)
	}
	return res, nil
}

func join(ctx context.Context, rw io.ReadWriter, ch Channel, code Code, name string) (Result, error) {
	stop := deadline(ctx, rw)
	defer stop()
	p, err := pake.InitCurve(code.password(), 0, curve)
	if err != nil {
		return Result{}, fmt.Errorf("key exchange: %w", err)
	}
	mine := p.Bytes()
	if err := writeMsg(rw, hello{V: Version, Slot: code.Slot, Pake: mine}); err != nil {
		return Result{}, err
	}
	var r reply
	if err := readMsg(rw, &r); err != nil {
		return Result{}, err
	}
	if r.Error != "" {
		return Result{}, refusalErr(r.Code, r.Error)
	}
	if err := update(p, r.Pake); err != nil {
		return Result{}, err
	}
	keys, err := deriveKeys(p, code.Slot, mine, r.Pake, ch.Exporter)
	if err != nil {
		return Result{}, err
	}
	if err := writeMsg(rw, confirm{Name: name, MAC: keys.mac(roleJoiner, ch.Self, ch.Peer, name)}); err != nil {
		return Result{}, err
	}
	c, err := keys.read(rw, roleInviter, ch)
	if err != nil {
		// The other device now holds this device's confirmation, worth
		// one guess at the code to it. A refusal that would send the join
		// on to another device ends it instead: one that only pretends to
		// hold the invite gets no second guess.
		if errors.Is(err, ErrNoInvite) || errors.Is(err, ErrBusy) || errors.Is(err, ErrClosed) {
			err = fmt.Errorf("refused after the key exchange (%v): %w", err, ErrProtocol)
		}
		return Result{}, err
	}
	return Result{ID: ch.Peer, Name: c.Name}, nil
}

// Roles label the two confirmation keys.
const (
	roleJoiner  = "joiner"
	roleInviter = "inviter"
)

// confirmKeys are the two HMAC keys of one exchange.
type confirmKeys map[string][]byte

// deriveKeys derives the confirmation keys from the PAKE's session key,
// salted with a hash of the transcript (the slot and both PAKE messages)
// and the channel's exported keying material.
// update gives p the other side's key exchange message. The message comes
// from a device that need not be paired (anyone on the LAN can send the
// first one), and the library dereferences its fields unchecked: a message
// that lacks them, or names a point it cannot use, makes it panic. Such a
// message is refused as malformed instead.
func update(p *pake.Pake, msg []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("key exchange: malformed message (%v): %w", r, ErrProtocol)
		}
	}()
	if err := p.Update(msg); err != nil {
		return fmt.Errorf("key exchange: %v: %w", err, ErrProtocol)
	}
	return nil
}

func deriveKeys(p *pake.Pake, slot int, joinerMsg, inviterMsg, exporter []byte) (confirmKeys, error) {
	k, err := p.SessionKey()
	if err != nil {
		return nil, fmt.Errorf("key exchange: %v: %w", err, ErrProtocol)
	}
	if len(exporter) < 32 {
		return nil, fmt.Errorf("channel binding of %d bytes, want 32: %w", len(exporter), ErrProtocol)
	}
	th := sha256.New()
	field(th, []byte(fmt.Sprintf("drive-node pair/%d slot %d", Version, slot)))
	field(th, joinerMsg)
	field(th, inviterMsg)
	field(th, exporter)
	keys := confirmKeys{}
	for _, role := range []string{roleJoiner, roleInviter} {
		key, err := hkdf.Key(sha256.New, k, th.Sum(nil), "drive-node pair/1 confirm "+role, 32)
		if err != nil {
			return nil, fmt.Errorf("derive keys: %w", err)
		}
		keys[role] = key
	}
	return keys, nil
}

// mac is role's confirmation: an HMAC over the sender's ID, the
// receiver's ID and the sender's name.
func (k confirmKeys) mac(role string, from, to certs.DeviceID, name string) []byte {
	m := hmac.New(sha256.New, k[role])
	field(m, []byte(role))
	field(m, from[:])
	field(m, to[:])
	field(m, []byte(name))
	return m.Sum(nil)
}

// read reads the other side's confirmation, made in role, and checks it:
// an error wrapping ErrWrongCode if it proves no knowledge of the code.
func (k confirmKeys) read(r io.Reader, role string, ch Channel) (confirm, error) {
	var c confirm
	if err := readMsg(r, &c); err != nil {
		return c, err
	}
	if c.Error != "" {
		return c, refusalErr(c.Code, c.Error)
	}
	if checkName(c.Name) != nil || !hmac.Equal(c.MAC, k.mac(role, ch.Peer, ch.Self, c.Name)) {
		return c, fmt.Errorf("the other device did not prove it knows the code (a mistyped code, or a device in the middle): %w", ErrWrongCode)
	}
	return c, nil
}

// field writes b with its length, so fields cannot run into each other.
func field(w io.Writer, b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	w.Write(n[:])
	w.Write(b)
}

func checkName(name string) error {
	if len(name) > MaxName || !utf8.ValidString(name) {
		return fmt.Errorf("device name: at most %d bytes of UTF-8: %w", MaxName, ErrProtocol)
	}
	return nil
}

// deadline applies ctx's deadline to rw's reads and writes if rw has
// deadlines, and ends them when ctx is cancelled; stop undoes that.
func deadline(ctx context.Context, rw io.ReadWriter) (stop func()) {
	d, ok := rw.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return func() {}
	}
	if t, ok := ctx.Deadline(); ok {
		d.SetDeadline(t)
	}
	stopAfter := context.AfterFunc(ctx, func() { d.SetDeadline(time.Unix(1, 0)) })
	return func() { stopAfter() }
}

// writeMsg writes one message: a 2-byte big-endian length and JSON.
func writeMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return fmt.Errorf("message of %d bytes: %w", len(b), ErrProtocol)
	}
	buf := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(buf, uint16(len(b)))
	copy(buf[2:], b)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// readMsg reads one message written by writeMsg.
func readMsg(r io.Reader, v any) error {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	size := int(binary.BigEndian.Uint16(n[:]))
	if size > maxMessage {
		return fmt.Errorf("message of %d bytes: %w", size, ErrProtocol)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%v: %w", err, ErrProtocol)
	}
	return nil
}

// Decline answers a joiner when this device holds no open invite: it
// reads the joiner's first message and refuses with ErrNoInvite.
func Decline(ctx context.Context, rw io.ReadWriter) error {
	stop := deadline(ctx, rw)
	defer stop()
	var h hello
	if err := readMsg(rw, &h); err != nil {
		return err
	}
	return writeMsg(rw, reply{Error: ErrNoInvite.Error(), Code: refusalCode(ErrNoInvite)})
}
