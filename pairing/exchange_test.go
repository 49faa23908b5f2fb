package pairing

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/schollz/pake/v3"

	"github.com/drive-node/drive-node/certs"
	"github.com/drive-node/drive-node/internal/clock"
)

func testID(b byte) certs.DeviceID {
	var id certs.DeviceID
	for i := range id {
		id[i] = b
	}
	return id
}

var (
	idInviter = testID(1)
	idJoiner  = testID(2)
	idMallory = testID(3)
)

func exporter(t *testing.T) []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

type outcome struct {
	res Result
	err error
}

// run answers iv on one end of a pipe and joins with code on the other,
// the joiner's writes passing through tamper (if not nil).
func run(t *testing.T, iv *Invite, code Code, tamper func(i int, msg []byte) []byte) (inv, joi outcome) {
	t.Helper()
	return exchange(t, iv, code, sides{joinTamper: tamper})
}

// sides varies an exchange: what each side writes passes through its
// tamper (if not nil), and each side may bind to a TLS session of its
// own (a nil exporter: both share one).
type sides struct {
	invTamper, joinTamper     func(i int, msg []byte) []byte
	invExporter, joinExporter []byte
}

// exchange is run with both sides varied as s says.
func exchange(t *testing.T, iv *Invite, code Code, s sides) (inv, joi outcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ex := exporter(t)
	exI, exJ := s.invExporter, s.joinExporter
	if exI == nil {
		exI = ex
	}
	if exJ == nil {
		exJ = ex
	}
	through := func(rw io.ReadWriter, f func(int, []byte) []byte) io.ReadWriter {
		if f == nil {
			return rw
		}
		return &tamperer{ReadWriter: rw, f: f}
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := iv.Answer(ctx, through(a, s.invTamper), Channel{Self: idInviter, Peer: idJoiner, Exporter: exI}, nil)
		a.Close()
		done <- outcome{r, err}
	}()
	r, err := Join(ctx, through(b, s.joinTamper), Channel{Self: idJoiner, Peer: idInviter, Exporter: exJ}, code, "joiner")
	b.Close()
	return <-done, outcome{r, err}
}

// tamperer passes every message the joiner writes through f.
type tamperer struct {
	io.ReadWriter
	f func(i int, msg []byte) []byte
	n int
}

func (t *tamperer) Write(b []byte) (int, error) {
	msg := t.f(t.n, append([]byte(nil), b[2:]...))
	t.n++
	buf := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	if _, err := t.ReadWriter.Write(append(buf, msg...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func newInvite(t *testing.T, clk clock.Clock) *Invite {
	t.Helper()
	iv, err := NewInvite(clk, 0, "inviter")
	if err != nil {
		t.Fatal(err)
	}
	return iv
}

func waitResult(t *testing.T, iv *Invite) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return iv.Wait(ctx)
}

func TestRightCodePairsBoth(t *testing.T) {
	iv := newInvite(t, nil)
	code, err := ParseCode(iv.Code().String())
	if err != nil {
		t.Fatal(err)
	}
	inv, joi := run(t, iv, code, nil)
	if inv.err != nil || joi.err != nil {
		t.Fatalf("inviter: %v; joiner: %v", inv.err, joi.err)
	}
	if inv.res != (Result{ID: idJoiner, Name: "joiner"}) || joi.res != (Result{ID: idInviter, Name: "inviter"}) {
		t.Fatalf("inviter got %+v, joiner got %+v", inv.res, joi.res)
	}
	if r, err := waitResult(t, iv); err != nil || r.ID != idJoiner {
		t.Fatalf("Wait: %+v, %v", r, err)
	}
	// One successful join only.
	if _, joi := run(t, iv, code, nil); !errors.Is(joi.err, ErrClosed) {
		t.Fatalf("second join: %v, want ErrClosed", joi.err)
	}
}

func wrongCode(c Code) Code {
	w := c
	if w.Words[2] == "academy" {
		w.Words[2] = "acrobat"
	} else {
		w.Words[2] = "academy"
	}
	return w
}

func TestWrongCodeFailsAndBurns(t *testing.T) {
	iv := newInvite(t, nil)
	inv, joi := run(t, iv, wrongCode(iv.Code()), nil)
	if !errors.Is(inv.err, ErrWrongCode) || !errors.Is(joi.err, ErrWrongCode) {
		t.Fatalf("inviter: %v; joiner: %v; want ErrWrongCode on both", inv.err, joi.err)
	}
	if _, err := waitResult(t, iv); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("Wait: %v, want ErrWrongCode", err)
	}
	if iv.Open() {
		t.Fatal("invite still open after a wrong code")
	}
	// The right code comes too late: the invite is burnt.
	if _, joi := run(t, iv, iv.Code(), nil); !errors.Is(joi.err, ErrClosed) {
		t.Fatalf("right code after a wrong one: %v, want ErrClosed", joi.err)
	}
}

func TestOtherNumberDoesNotBurn(t *testing.T) {
	iv := newInvite(t, nil)
	other := iv.Code()
	other.Slot = other.Slot%MaxSlot + 1
	if _, joi := run(t, iv, other, nil); !errors.Is(joi.err, ErrNoInvite) {
		t.Fatalf("other number: %v, want ErrNoInvite", joi.err)
	}
	if inv, joi := run(t, iv, iv.Code(), nil); inv.err != nil || joi.err != nil {
		t.Fatalf("right code after another number: %v / %v", inv.err, joi.err)
	}
}

func TestExpiredInvite(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	iv := newInvite(t, clk)
	clk.Advance(TTL + time.Second)
	if _, joi := run(t, iv, iv.Code(), nil); !errors.Is(joi.err, ErrExpired) {
		t.Fatalf("join after expiry: %v, want ErrExpired", joi.err)
	}
	if _, err := waitResult(t, iv); !errors.Is(err, ErrExpired) {
		t.Fatalf("Wait: %v, want ErrExpired", err)
	}
}

func TestTamperedMessagesRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  int
	}{{"pake message", 0}, {"confirmation", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			iv := newInvite(t, nil)
			inv, joi := run(t, iv, iv.Code(), func(i int, msg []byte) []byte {
				if i != tc.msg {
					return msg
				}
				if i == 0 {
					// Another PAKE message of the right code: a replay of
					// some other exchange's first message.
					var h hello
					mustUnmarshal(t, msg, &h)
					other, _, _ := otherHello(t, iv.Code())
					h.Pake = other
					return mustMarshal(t, h)
				}
				var c confirm
				mustUnmarshal(t, msg, &c)
				c.MAC[0] ^= 1
				return mustMarshal(t, c)
			})
			if inv.err == nil || joi.err == nil {
				t.Fatalf("tampered exchange succeeded: inviter %v, joiner %v", inv.err, joi.err)
			}
			if _, err := waitResult(t, iv); err == nil {
				t.Fatal("the invite paired after a tampered exchange")
			}
			if iv.Open() {
				t.Fatal("invite still open after a tampered exchange")
			}
		})
	}
}

// TestMalformedKeyExchangeRefused sends the inviter key exchange messages
// that lack what the library reads or name points off the curve: each is
// refused as malformed and burns the invite; none crashes the device.
func TestMalformedKeyExchangeRefused(t *testing.T) {
	for _, bad := range []string{`null`, `{}`, `{"Role":0}`, `[]`, `"x"`, `{"Role":0,"Xᵤ":1,"Xᵥ":2}`, `{"Role":0,"Xᵤ":null,"Xᵥ":null}`} {
		t.Run(bad, func(t *testing.T) {
			iv := newInvite(t, nil)
			inv, joi := run(t, iv, iv.Code(), func(i int, msg []byte) []byte {
				if i != 0 {
					return msg
				}
				var h hello
				mustUnmarshal(t, msg, &h)
				h.Pake = []byte(bad)
				return mustMarshal(t, h)
			})
			if !errors.Is(inv.err, ErrProtocol) || joi.err == nil {
				t.Fatalf("inviter %v (want a protocol error), joiner %v", inv.err, joi.err)
			}
			if iv.Open() {
				t.Fatal("invite still open after a malformed message")
			}
		})
	}
}

// TestRefusalAfterTheKeyExchangeEndsTheJoin: a device that runs the key
// exchange and then says it holds no invite has had the joiner's one
// guess; the join must end there, not go on to another device.
func TestRefusalAfterTheKeyExchangeEndsTheJoin(t *testing.T) {
	iv := newInvite(t, nil)
	// The inviter's confirmation is replaced by a refusal.
	_, joi := exchange(t, iv, iv.Code(), sides{invTamper: func(i int, msg []byte) []byte {
		if i == 1 {
			return mustMarshal(t, confirm{Error: "no open invite", Code: "no-invite"})
		}
		return msg
	}})
	if !errors.Is(joi.err, ErrProtocol) || errors.Is(joi.err, ErrNoInvite) {
		t.Fatalf("join ended with %v, want a protocol error that does not read as no invite", joi.err)
	}
}

func TestReplayedConfirmationRefused(t *testing.T) {
	// A joiner's messages recorded from one session, replayed over
	// another TLS session (another exporter) with the same invite: the
	// binding differs, so the inviter refuses.
	iv := newInvite(t, nil)
	// The "joiner" runs with a binding of its own session.
	inv, joi := exchange(t, iv, iv.Code(), sides{invExporter: exporter(t), joinExporter: exporter(t)})
	if !errors.Is(joi.err, ErrWrongCode) {
		t.Fatalf("joiner on another channel: %v, want ErrWrongCode", joi.err)
	}
	if !errors.Is(inv.err, ErrWrongCode) {
		t.Fatalf("inviter: %v, want ErrWrongCode", inv.err)
	}
}

// TestManInTheMiddle: Mallory sits between the joiner and the inviter,
// with a TLS session and certificate of her own toward each, and a guess
// of the code. Neither side pairs with anything, and the invite is burnt.
func TestManInTheMiddle(t *testing.T) {
	for _, guess := range []string{"wrong guess", "relay only"} {
		t.Run(guess, func(t *testing.T) {
			iv := newInvite(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			inv1, inv2 := net.Pipe() // inviter <-> Mallory
			joi1, joi2 := net.Pipe() // joiner <-> Mallory
			defer inv1.Close()
			defer inv2.Close()
			defer joi1.Close()
			defer joi2.Close()
			exI, exJ := exporter(t), exporter(t)
			invDone := make(chan error, 1)
			go func() {
				_, err := iv.Answer(ctx, inv1, Channel{Self: idInviter, Peer: idMallory, Exporter: exI}, nil)
				inv1.Close()
				invDone <- err
			}()
			joiDone := make(chan error, 1)
			go func() {
				_, err := Join(ctx, joi1, Channel{Self: idJoiner, Peer: idMallory, Exporter: exJ}, iv.Code(), "joiner")
				joi1.Close()
				joiDone <- err
			}()
			if guess == "relay only" {
				// Mallory passes every byte on unchanged.
				go io.Copy(inv2, joi2)
				go io.Copy(joi2, inv2)
			} else {
				// Mallory plays inviter to the joiner and joiner to the
				// inviter, with her guess.
				g := wrongCode(iv.Code())
				mv, err := NewInvite(nil, 0, "mallory")
				if err != nil {
					t.Fatal(err)
				}
				mv.code = g
				go mv.Answer(ctx, joi2, Channel{Self: idMallory, Peer: idJoiner, Exporter: exJ}, nil)
				go Join(ctx, inv2, Channel{Self: idMallory, Peer: idInviter, Exporter: exI}, g, "mallory")
			}
			if err := <-invDone; err == nil {
				t.Fatal("the inviter paired through a device in the middle")
			}
			if err := <-joiDone; err == nil {
				t.Fatal("the joiner paired through a device in the middle")
			}
			if iv.Open() {
				t.Fatal("invite still open after an attack")
			}
		})
	}
}

func TestParseCode(t *testing.T) {
	c, err := NewCode()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.String(), " " + c.String() + " ", c.String()[:0] + stringsUpper(c.String())} {
		got, err := ParseCode(s)
		if err != nil || got != c {
			t.Fatalf("ParseCode(%q) = %v, %v; want %v", s, got, err, c)
		}
	}
	for _, bad := range []string{"", "7", "7-orbit-velvet", "0-academy-acrobat-active", "1000-academy-acrobat-active", "x-academy-acrobat-active", "7-academy-acrobat-notaword", "7-academy-acrobat-active-actor"} {
		if _, err := ParseCode(bad); !errors.Is(err, ErrBadCode) {
			t.Errorf("ParseCode(%q) = %v, want ErrBadCode", bad, err)
		}
	}
}

func stringsUpper(s string) string { return strings.ToUpper(s) }

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// otherHello is the PAKE message of another exchange with code.
func otherHello(t *testing.T, code Code) ([]byte, int, error) {
	t.Helper()
	p, err := pake.InitCurve(code.password(), 0, curve)
	if err != nil {
		t.Fatal(err)
	}
	return p.Bytes(), code.Slot, nil
}

// A second joiner arriving while one is at it is told "busy" and changes
// nothing; the first one pairs.
func TestSecondJoinerBusy(t *testing.T) {
	iv := newInvite(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a1, b1 := net.Pipe()
	defer a1.Close()
	defer b1.Close()
	ex := exporter(t)
	first := make(chan outcome, 1)
	go func() {
		r, err := iv.Answer(ctx, a1, Channel{Self: idInviter, Peer: idJoiner, Exporter: ex}, nil)
		first <- outcome{r, err}
	}()
	// The first joiner's PAKE message is in: the invite is taken.
	p, err := pake.InitCurve(iv.Code().password(), 0, curve)
	if err != nil {
		t.Fatal(err)
	}
	mine := p.Bytes()
	if err := writeMsg(b1, hello{V: Version, Slot: iv.Code().Slot, Pake: mine}); err != nil {
		t.Fatal(err)
	}
	var r reply
	if err := readMsg(b1, &r); err != nil || r.Error != "" {
		t.Fatalf("first joiner's reply: %+v, %v", r, err)
	}
	inv2, joi2 := run(t, iv, iv.Code(), nil)
	if !errors.Is(joi2.err, ErrBusy) || !errors.Is(inv2.err, ErrBusy) {
		t.Fatalf("second joiner: %v / %v, want ErrBusy", joi2.err, inv2.err)
	}
	// The first joiner finishes its exchange and pairs.
	if err := p.Update(r.Pake); err != nil {
		t.Fatal(err)
	}
	keys, err := deriveKeys(p, iv.Code().Slot, mine, r.Pake, ex)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeMsg(b1, confirm{Name: "first", MAC: keys.mac(roleJoiner, idJoiner, idInviter, "first")}); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.read(b1, roleInviter, Channel{Self: idJoiner, Peer: idInviter, Exporter: ex}); err != nil {
		t.Fatalf("first joiner: %v", err)
	}
	if o := <-first; o.err != nil || o.res.Name != "first" {
		t.Fatalf("inviter: %+v", o)
	}
}

func TestCancelledInvite(t *testing.T) {
	iv := newInvite(t, nil)
	iv.Cancel()
	if _, err := waitResult(t, iv); !errors.Is(err, ErrCancelled) {
		t.Fatalf("Wait after Cancel: %v, want ErrCancelled", err)
	}
	if _, joi := run(t, iv, iv.Code(), nil); !errors.Is(joi.err, ErrClosed) {
		t.Fatalf("join after Cancel: %v, want ErrClosed", joi.err)
	}
}
