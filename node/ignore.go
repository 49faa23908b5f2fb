package node

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drive-node/drive-node/node/internal/ignore"
	"github.com/drive-node/drive-node/oplog"
	"github.com/drive-node/drive-node/state"
)

// What the user tells the node not to sync: the built-in defaults (junk
// that operating systems and programs leave), the folder's rules file,
// which is synced so that every device ignores the same things, and the
// device's own rules file in the state directory. An ignored path is
// never recorded, announced or written here. What a rule comes to ignore
// stays where it is on every device; a peer's op for an ignored path is
// kept in the log and set aside (see state.SetAside), and carried out
// once no rule ignores the path any more.

const (
	// IgnoreFileName is the folder's rules file, at its root, in git's
	// ignore syntax. It is always synced, whatever it says.
	IgnoreFileName = ".driveignore"
	// DeviceIgnoreName is the device's own rules file in the state
	// directory; it is not synced.
	DeviceIgnoreName = "ignore"
	// maxIgnoreBytes bounds what is read of a rules file.
	maxIgnoreBytes = 1 << 20
	// whyIgnored is the reason set-aside ops of ignored paths carry.
	whyIgnored = "ignored"
	// ignorePoll is how often the device's rules file is looked at for a
	// change; the folder's is watched like any file.
	ignorePoll = 5 * time.Second
)

// ignoreRules is the rules in force and the texts they were made from.
type ignoreRules struct {
	m              *ignore.Matcher
	folder, device []byte
	// folderRules and deviceRules count the rules of each text.
	folderRules, deviceRules int
	deviceStamp              fileStamp
}

// newIgnoreRules puts the defaults, then the folder's rules, then the
// device's (from devicePath), each able to override what comes before,
// into one matcher.
func newIgnoreRules(folder, device []byte, devicePath string) *ignoreRules {
	fr, dr := ignore.Parse(IgnoreFileName, folder), ignore.Parse(devicePath, device)
	return &ignoreRules{m: ignore.New(ignore.Defaults(), fr, dr), folder: folder, device: device,
		folderRules: len(fr), deviceRules: len(dr), deviceStamp: stampOf(devicePath)}
}

// fileStamp tells a file's change without reading it.
type fileStamp struct {
	size  int64
	mtime time.Time
	ok    bool
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{st.Size(), st.ModTime(), true}
}

// sameRules reports whether r and o were made from the same texts.
func (r *ignoreRules) sameRules(o *ignoreRules) bool {
	return r != nil && o != nil && bytes.Equal(r.folder, o.folder) && bytes.Equal(r.device, o.device)
}

// readIgnoreRules reads the folder's rules file (through root; absent is
// no rules) and the device's, in stateDir, and builds the matcher (see
// newIgnoreRules).
func readIgnoreRules(root Folder, stateDir string) (*ignoreRules, error) {
	var folder, device []byte
	var err error
	if root != nil {
		if folder, err = readRulesFile(func() (io.ReadCloser, fs.FileInfo, error) {
			st, err := root.Lstat(IgnoreFileName)
			if err != nil || !st.Mode().IsRegular() {
				return nil, st, err
			}
			f, err := root.Open(IgnoreFileName)
			return f, st, err
		}); err != nil {
			return nil, fmt.Errorf("read %s: %w", IgnoreFileName, err)
		}
	}
	devicePath := filepath.Join(stateDir, DeviceIgnoreName)
	if device, err = readRulesFile(func() (io.ReadCloser, fs.FileInfo, error) {
		st, err := os.Stat(devicePath)
		if err != nil || !st.Mode().IsRegular() {
			return nil, st, err
		}
		f, err := os.Open(devicePath)
		return f, st, err
	}); err != nil {
		return nil, fmt.Errorf("read %s: %w", devicePath, err)
	}
	return newIgnoreRules(folder, device, devicePath), nil
}

// readRulesFile reads what open opens; a file that is not there, or is
// not a regular file, holds no rules.
func readRulesFile(open func() (io.ReadCloser, fs.FileInfo, error)) ([]byte, error) {
	f, st, err := open()
	if errors.Is(err, fs.ErrNotExist) || err == nil && f == nil {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > maxIgnoreBytes {
		return nil, fmt.Errorf("%d bytes; rules files are read up to %d", st.Size(), maxIgnoreBytes)
	}
	return io.ReadAll(io.LimitReader(f, maxIgnoreBytes))
}

// errTouchesIgnored is a remote op whose effects here would change a path
// the rules ignore (an edit carried to a rename's target there): it is set
// aside as if its own paths were ignored.
var errTouchesIgnored = errors.New("the change would touch a path ignored here")

// ignored reports whether p (a directory if dir) is not synced here: the
// node's own files, and what the rules ignore.
func (n *Node) ignored(p string, dir bool) bool {
	if n.reserved(p) {
		return true
	}
	if p == IgnoreFileName {
		return false
	}
	return n.ignoreRules.Load().m.Ignored(p, dir)
}

// ignoredOpPath reports whether p, one of op's paths, is ignored here.
func (n *Node) ignoredOpPath(op oplog.Op, p string) bool {
	return n.ignored(p, op.Kind == oplog.KindMkdir || op.Kind == oplog.KindRmdir)
}

// ignoredPart says what of the remote op is ignored here: all of it (it
// is set aside), a rename's source or target (what is not ignored is
// carried out: the target's content is placed, or the source removed, as
// it goes out of view), or nothing. part is the op to carry out when a
// part is ignored.
func (n *Node) ignoredPart(op oplog.Op) (all bool, part *oplog.Op) {
	from := n.ignoredOpPath(op, op.Path)
	if op.Kind != oplog.KindRename {
		return from, nil
	}
	to := n.ignoredOpPath(op, op.NewPath)
	switch {
	case from && to:
		return true, nil
	case to:
		o := removalOf(op)
		return false, &o
	case from:
		o := op
		o.Kind, o.Path, o.NewPath = oplog.KindWrite, op.NewPath, ""
		return false, &o
	}
	return false, nil
}

// setAsideOf is the row that sets op aside for why.
func setAsideOf(op oplog.Op, why string) state.SetAside {
	return state.SetAside{Op: opID(op), Path: op.Path, NewPath: op.NewPath, Why: why}
}

// metaIgnoreRules holds the texts of the rules last put in force (JSON
// ignoreTexts): a start that cannot read a rules file uses them, rather
// than syncing what the user's rules hide.
const metaIgnoreRules = "ignore_rules"

// ignoreTexts are the rules files' texts, as kept in metaIgnoreRules.
type ignoreTexts struct {
	Folder []byte `json:"folder"`
	Device []byte `json:"device"`
}

// loadIgnore reads the rules files and puts them in force. When they
// changed, the watcher looks at the whole folder again (what is no
// longer ignored is recorded, what now is is left alone) and the next
// apply pass carries out the ops set aside for paths no longer ignored.
// A rules file that cannot be read leaves the rules as they were: those
// last in force, at start.
func (n *Node) loadIgnore(ctx context.Context) {
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	n.loadIgnoreLocked(ctx)
}

// loadIgnoreLocked is loadIgnore with the commit lock held: what is
// recorded next is judged by the rules read.
func (n *Node) loadIgnoreLocked(ctx context.Context) {
	r, err := readIgnoreRules(n.folderRoot(), n.cfg.StateDir)
	if err != nil {
		if n.ignoreLoaded {
			n.log.Warn("the ignore rules cannot be read; the rules in force stay", "err", err)
			return
		}
		var last ignoreTexts
		if raw, ok, _ := n.db.Meta(ctx, metaIgnoreRules); !ok || json.Unmarshal([]byte(raw), &last) != nil {
			n.log.Warn("the ignore rules cannot be read, and none were in force before: only the defaults apply", "err", err)
			return
		}
		n.log.Warn("the ignore rules cannot be read; the rules last in force apply", "err", err)
		r = newIgnoreRules(last.Folder, last.Device, filepath.Join(n.cfg.StateDir, DeviceIgnoreName))
	} else if raw, err := json.Marshal(ignoreTexts{r.folder, r.device}); err == nil {
		if prev, _, _ := n.db.Meta(ctx, metaIgnoreRules); prev != string(raw) {
			if err := n.db.SetMeta(ctx, metaIgnoreRules, string(raw)); err != nil {
				n.log.Warn("keeping the ignore rules in force failed", "err", err)
			}
		}
	}
	n.ignoreLoaded = true
	old := n.ignoreRules.Swap(r)
	if old.sameRules(r) {
		return
	}
	n.log.Info("ignore rules in force", "folder_rules", r.folderRules, "device_rules", r.deviceRules)
	n.setAsideDue.Store(true)
	n.rescanKick.Kick()
	n.kickApply()
}

// ignoreLoop puts the rules in force again when the folder's rules file
// was recorded or placed (ignoreKick) or the device's file changed and
// then stayed as it was for a poll (a file read while it is saved would
// lose rules for a moment, and sync what they hide).
func (n *Node) ignoreLoop(ctx context.Context) {
	t := n.clock.NewTicker(n.ignorePoll)
	defer t.Stop()
	var seen fileStamp
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.ignoreKick.C():
			n.loadIgnore(ctx)
		case <-t.C():
			now := stampOf(filepath.Join(n.cfg.StateDir, DeviceIgnoreName))
			if now != n.ignoreRules.Load().deviceStamp && now == seen {
				n.loadIgnore(ctx)
			}
			seen = now
		}
	}
}

// sortCausal orders ops by Lamport clock, then origin and sequence: an
// order every causal order agrees with.
func sortCausal(ops []oplog.Op) {
	slices.SortFunc(ops, func(a, b oplog.Op) int {
		return cmp.Or(cmp.Compare(a.Lamport, b.Lamport), compareIDs(a.Origin, b.Origin), cmp.Compare(a.Seq, b.Seq))
	})
}

// IgnoreVerdict is what the rules say of one path, as `drive-node ignore
// --check` shows it. Source, Line and Pattern name the rule that decided
// (a "!" rule decides that a path is not ignored); Source is empty when no
// rule matched, and "(drive-node)" for the node's own files.
type IgnoreVerdict struct {
	Path    string `json:"path"`
	Ignored bool   `json:"ignored"`
	Source  string `json:"source,omitempty"`
	Line    int    `json:"line,omitempty"`
	Pattern string `json:"pattern,omitempty"`
}

// CheckIgnore says for each path (slash-separated, relative to folder; a
// trailing slash or a directory on disk makes it a directory) whether the
// rules in force for folder, with the device rules in stateDir, ignore it.
func CheckIgnore(folder, stateDir string, paths []string) ([]IgnoreVerdict, error) {
	root, err := OpenRootFolder(folder)
	if err != nil {
		return nil, fmt.Errorf("folder %s: %w", folder, err)
	}
	defer root.Close()
	r, err := readIgnoreRules(root, stateDir)
	if err != nil {
		return nil, err
	}
	reserved := ignoreFunc(folder, stateDir)
	out := make([]IgnoreVerdict, 0, len(paths))
	for _, p := range paths {
		clean := strings.Trim(p, "/")
		dir := strings.HasSuffix(p, "/")
		if st, err := root.Lstat(clean); err == nil && st.IsDir() {
			dir = true
		}
		v := IgnoreVerdict{Path: p}
		switch {
		case clean == "" || clean == ".":
		case reserved(clean):
			v.Ignored, v.Source = true, "(drive-node)"
		case clean == IgnoreFileName:
		default:
			m := r.m.Match(clean, dir)
			v.Ignored = m.Ignored
			if m.Rule != nil {
				v.Source, v.Line, v.Pattern = m.Rule.Source, m.Rule.Line, m.Rule.Text
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// DefaultIgnoreRules returns the built-in rules, which apply unless a "!"
// rule in a rules file brings a path back.
func DefaultIgnoreRules() []string {
	var out []string
	for _, r := range ignore.Defaults() {
		out = append(out, r.Text)
	}
	return out
}
