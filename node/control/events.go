package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drive-node/drive-node/node"
)

// keepAlive is how long an event stream stays silent before the server
// sends a comment line: a client gone is noticed, and proxies keep the
// connection.
const keepAlive = 15 * time.Second

// streamEvents answers GET /events with server-sent events: each event as
// "id: ID", "event: TYPE" and "data: JSON" lines. The stream starts after
// the ID the Last-Event-ID header or the since parameter names (every
// event the ring holds for since=0), else with the next event. Events the
// ring no longer holds are reported as one gap event (see node.EventGap).
func streamEvents(w http.ResponseWriter, r *http.Request, events *node.Events, log *slog.Logger) {
	since := events.Last()
	arg := r.Header.Get("Last-Event-ID")
	if v := r.URL.Query().Get("since"); v != "" && arg == "" {
		arg = v
	}
	if arg != "" {
		id, err := strconv.ParseUint(arg, 10, 64)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(errorBody{fmt.Sprintf("event id %q: %v", arg, err)})
			return
		}
		since = id
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	sub := events.Subscribe(since)
	ctx := r.Context()
	bw := bufio.NewWriter(w)
	for {
		var ev node.Event
		var err error
		if sub.Ready() {
			ev, err = sub.Next(ctx)
		} else {
			wait, cancel := context.WithTimeout(ctx, keepAlive)
			ev, err = sub.Next(wait)
			cancel()
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil: // silent for keepAlive
			bw.WriteString(": keep-alive\n\n")
		default:
			if err := writeEvent(bw, ev); err != nil {
				log.Debug("event stream ended", "err", err)
				return
			}
			if sub.Ready() {
				continue // more at once: written together
			}
		}
		if err := bw.Flush(); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// writeEvent writes ev as one server-sent event.
func writeEvent(w *bufio.Writer, ev node.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, data)
	return nil
}

// Follow follows the daemon's events after since (see node.Events.Subscribe;
// nil: only new ones), calling fn with each in order, until ctx ends, fn
// fails or the daemon stops. A connection that breaks is resumed from the
// last event fn was given, so none is missed or repeated; what the daemon
// no longer holds arrives as a gap event.
func (c *Client) Follow(ctx context.Context, since *uint64, fn func(node.Event) error) error {
	for {
		err := c.eventsOnce(ctx, since, func(ev node.Event) error {
			if err := fn(ev); err != nil {
				return err
			}
			id := ev.ID
			since = &id
			return nil
		})
		var stop stopError
		var refused connectError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &stop):
			return stop.err
		case errors.As(err, &refused):
			return refused.err // the daemon is not there (any more)
		}
		// The stream broke: go on from the last event, after a moment.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stopError is an error from the caller's fn: it ends Events.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// connectError is a stream that could not be opened: it ends Events.
type connectError struct{ err error }

func (e connectError) Error() string { return e.err.Error() }

// eventsOnce reads one event stream until it ends.
func (c *Client) eventsOnce(ctx context.Context, since *uint64, fn func(node.Event) error) error {
	url := "http://drive-node/events"
	if since != nil {
		url += "?since=" + strconv.FormatUint(*since, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return connectError{fmt.Errorf("daemon (%s): %w", c.path, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return connectError{fmt.Errorf("daemon (%s): %s", c.path, resp.Status)}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue // id and event repeat what data holds; comments
		}
		var ev node.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("daemon (%s): event: %w", c.path, err)
		}
		if err := fn(ev); err != nil {
			return stopError{err}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("event stream ended")
}
