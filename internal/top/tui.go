package top

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// Screen is the terminal the view runs on.
type Screen struct {
	In, Out *os.File
	// Status returns the line shown at the bottom (the agent's last
	// warning), or "".
	Status func() string
}

// Run shows the live view until q (or Ctrl-C) is pressed, ctx ends or
// done is closed (the agent stopped). The terminal is put back as it was
// on every way out: those, a failed write, and a panic in the view.
func (s Screen) Run(ctx context.Context, updates <-chan Snapshot, done <-chan struct{}) (err error) {
	inFd, outFd := int(s.In.Fd()), int(s.Out.Fd())
	w, h, err := Size(outFd)
	if err != nil {
		return err
	}
	old, err := makeRaw(inFd)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(s.Out, enterScreen); err != nil {
		_ = restore(inFd, old)
		return fmt.Errorf("terminal: %w", err)
	}
	keys := make(chan []rune, 16)
	stop := make(chan struct{})
	var reader sync.WaitGroup
	defer func() {
		// Stop the key reader first (it wakes within the 100 ms read
		// timeout), so nothing reads the terminal after it is restored.
		close(stop)
		reader.Wait()
		io.WriteString(s.Out, attrsOff+leaveScreen)
		if rerr := restore(inFd, old); rerr != nil && err == nil {
			err = rerr
		}
		if p := recover(); p != nil {
			panic(p) // the terminal is back to normal: let the panic print
		}
	}()
	reader.Add(1)
	go func() {
		defer reader.Done()
		buf := make([]byte, 64)
		for {
			n, rerr := s.In.Read(buf)
			select {
			case <-stop:
				return
			default:
			}
			if n > 0 {
				select {
				case keys <- parseKeys(buf[:n]):
				case <-stop:
					return
				}
			}
			if rerr != nil && rerr != io.EOF {
				return
			}
		}
	}()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)

	v := NewView(w, h)
	for {
		if s.Status != nil {
			v.Status = s.Status()
		}
		if err := s.draw(v); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			return nil
		case snap := <-updates:
			v.Update(snap)
		case ks := <-keys:
			for _, k := range ks {
				if v.Key(k) {
					return nil
				}
			}
		case <-winch:
			if w, h, err := Size(outFd); err == nil {
				v.Width, v.Height = w, h
			}
		}
	}
}

// draw writes the whole screen in one write: each line overwrites the old
// one and clears its rest, so the screen does not flicker.
func (s Screen) draw(v *View) error {
	var b strings.Builder
	b.WriteString(home)
	lines := v.Render()
	for i, l := range lines {
		if strings.HasPrefix(l, ">") {
			l = reverseOn + l + attrsOff
		}
		b.WriteString(l)
		b.WriteString(clearLine)
		if i < len(lines)-1 {
			b.WriteString("\r\n") // raw mode: no output processing
		}
	}
	b.WriteString(clearBelow)
	if _, err := io.WriteString(s.Out, b.String()); err != nil {
		return fmt.Errorf("terminal: %w", err)
	}
	return nil
}

// RunPlain prints every snapshot as text (Plain) until done is closed (the
// agent stopped, after its final collection), then the last one still
// pending. For a stdout that is no terminal: a pipe, a file, a log.
func RunPlain(out io.Writer, width int, updates <-chan Snapshot, done <-chan struct{}) error {
	for {
		select {
		case snap := <-updates:
			if _, err := io.WriteString(out, Plain(snap, width)); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		case <-done:
			select {
			case snap := <-updates:
				if _, err := io.WriteString(out, Plain(snap, width)); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			default:
			}
			return nil
		}
	}
}
