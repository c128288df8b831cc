package top

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Terminal control through termios and ANSI sequences. golang.org/x/sys is
// already a dependency; these few ioctls are all a full-screen view needs,
// so no terminal library is pulled in.

// IsTerminal reports whether fd is a terminal.
func IsTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// Size is the terminal's width and height in cells.
func Size(fd int) (width, height int, err error) {
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0, fmt.Errorf("terminal size: %w", err)
	}
	return int(ws.Col), int(ws.Row), nil
}

// makeRaw puts fd into raw mode (as cfmakeraw(3): no echo, no line
// buffering, no signal keys, no output processing) and returns the state
// to restore.
func makeRaw(fd int) (*unix.Termios, error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("terminal mode: %w", err)
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	// Reads return after 100 ms even without input, so the reader notices
	// that the view has ended and a lone Esc is told from an Esc sequence.
	raw.Cc[unix.VMIN] = 0
	raw.Cc[unix.VTIME] = 1
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("terminal raw mode: %w", err)
	}
	return old, nil
}

func restore(fd int, st *unix.Termios) error {
	return unix.IoctlSetTermios(fd, unix.TCSETS, st)
}

// ANSI sequences: the alternate screen keeps the user's scrollback intact.
const (
	enterScreen = "\x1b[?1049h\x1b[?25l" // alternate screen, hide cursor
	leaveScreen = "\x1b[?25h\x1b[?1049l" // show cursor, main screen
	home        = "\x1b[H"
	clearLine   = "\x1b[K"
	clearBelow  = "\x1b[J"
	reverseOn   = "\x1b[7m"
	attrsOff    = "\x1b[0m"
)

// parseKeys turns bytes read from a raw terminal into keys. Arrow keys
// come as ESC [ A..D (or ESC O A..D); a read holding ESC alone is the Esc
// key (the 100 ms read timeout splits them).
func parseKeys(b []byte) []rune {
	var keys []rune
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == 0x1b:
			if i+2 < len(b) && (b[i+1] == '[' || b[i+1] == 'O') {
				k := rune(0)
				switch b[i+2] {
				case 'A':
					k = KeyUp
				case 'B':
					k = KeyDown
				case 'C':
					k = KeyRight
				case 'D':
					k = KeyLeft
				case '5', '6': // ESC [ 5 ~ / ESC [ 6 ~
					if i+3 < len(b) && b[i+3] == '~' {
						k = KeyPgUp
						if b[i+2] == '6' {
							k = KeyPgDn
						}
						i++
					}
				}
				i += 2
				if k != 0 {
					keys = append(keys, k)
				}
				continue
			}
			keys = append(keys, KeyEsc)
		case c == '\r' || c == '\n':
			keys = append(keys, KeyEnter)
		case c == 0x7f || c == 0x08:
			keys = append(keys, KeyBackspace)
		case c == 0x03:
			keys = append(keys, KeyCtrlC)
		case c >= 0x20 && c < 0x7f:
			keys = append(keys, rune(c))
		}
	}
	return keys
}
