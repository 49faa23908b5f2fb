package node

import (
	"sync"

	"github.com/drive-node/drive-node/content"
	"github.com/drive-node/drive-node/state"
)

// announcedFiles are records of local ops that peers may have heard of
// before the database holds them (see commitLocalLocked).
type announcedFiles struct {
	mu     sync.Mutex
	byHash map[content.Hash][]state.File
}

func (a *announcedFiles) add(fs []state.File) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range fs {
		if f.Deleted || f.Dir || f.Hash.IsZero() {
			continue
		}
		if a.byHash == nil {
			a.byHash = map[content.Hash][]state.File{}
		}
		a.byHash[f.Hash] = append(a.byHash[f.Hash], f)
	}
}

func (a *announcedFiles) drop(fs []state.File) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range fs {
		delete(a.byHash, f.Hash)
	}
}

// find returns a record announced with content h.
func (a *announcedFiles) find(h content.Hash) (state.File, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if fs := a.byHash[h]; len(fs) > 0 {
		return fs[len(fs)-1], true
	}
	return state.File{}, false
}
