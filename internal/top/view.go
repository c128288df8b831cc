package top

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/telagent/telagent/export"
	"github.com/telagent/telagent/metrics"
)

// Special keys; printable keys are their rune.
const (
	KeyUp rune = -(iota + 1)
	KeyDown
	KeyLeft
	KeyRight
	KeyEnter
	KeyEsc
	KeyBackspace
	KeyPgUp
	KeyPgDn
	KeyCtrlC
)

// column describes how a column is shown and sorted.
type column struct {
	title string
	width int
	key   rune // the key that sorts by it
	left  bool // left-aligned (text)
}

var columns = [numColumns]column{
	ColPID:      {"PID", 7, 'p', false},
	ColName:     {"COMM", 16, 'n', true},
	ColCPU:      {"CPU%", 6, 'c', false},
	ColRunqP50:  {"RUNQ-P50", 9, 0, false},
	ColRunqP99:  {"RUNQ-P99", 9, 'r', false},
	ColSyscalls: {"SYSCALL/S", 10, 's', false},
	ColErrors:   {"ERR/S", 8, 'e', false},
	ColFaults:   {"FAULT/S", 8, 'f', false},
	ColDisk:     {"DISK/S", 8, 'd', false},
	ColRetrans:  {"RETRANS/S", 10, 't', false},
}

// sortable lists the columns < and > cycle through.
var sortable = []Column{ColPID, ColName, ColCPU, ColRunqP50, ColRunqP99, ColSyscalls, ColErrors, ColFaults, ColDisk, ColRetrans}

// View is the screen's state: what is shown of the newest snapshot and how.
// Key changes it, Render draws it; both are pure, so tests drive them
// without a terminal.
type View struct {
	Width, Height int

	snap    Snapshot
	hasData bool

	sortBy  Column
	reverse bool // ascending instead of the column's natural order

	filter  string
	editing bool   // typing a filter after '/'
	edit    string // the filter being typed

	selPID int64 // the highlighted process, kept across refreshes
	detail bool  // the highlighted process's histograms fill the screen

	// Status is shown on the last line (the agent's last warning).
	Status string
}

// NewView starts sorted by on-CPU time, busiest first.
func NewView(width, height int) *View {
	return &View{Width: width, Height: height, sortBy: ColCPU}
}

// Update replaces the data shown.
func (v *View) Update(s Snapshot) { v.snap, v.hasData = s, true }

// Key applies one key press; it returns true when the view should quit.
func (v *View) Key(k rune) (quit bool) {
	if v.editing {
		switch k {
		case KeyEnter:
			v.filter, v.editing = v.edit, false
		case KeyEsc:
			v.editing = false
		case KeyBackspace:
			if r := []rune(v.edit); len(r) > 0 {
				v.edit = string(r[:len(r)-1])
			}
		case KeyCtrlC:
			return true
		default:
			if k >= ' ' {
				v.edit += string(k)
			}
		}
		return false
	}
	if v.detail {
		switch k {
		case 'q', KeyCtrlC:
			return true
		case KeyEsc, KeyEnter, KeyLeft, KeyBackspace:
			v.detail = false
		}
		return false
	}
	switch k {
	case 'q', KeyCtrlC:
		return true
	case '/':
		v.editing, v.edit = true, v.filter
	case KeyEsc:
		v.filter = ""
	case KeyUp, 'k':
		v.move(-1)
	case KeyDown, 'j':
		v.move(1)
	case KeyPgUp:
		v.move(-max(v.Height-4, 1))
	case KeyPgDn:
		v.move(max(v.Height-4, 1))
	case KeyEnter, KeyRight:
		if v.selPID != 0 {
			v.detail = true
		}
	case '<', '>':
		i := slices.Index(sortable, v.sortBy)
		if k == '<' {
			i = (i - 1 + len(sortable)) % len(sortable)
		} else {
			i = (i + 1) % len(sortable)
		}
		v.sortBy, v.reverse = sortable[i], false
	default:
		for c, col := range columns {
			if col.key != 0 && col.key == k {
				if v.sortBy == Column(c) {
					v.reverse = !v.reverse
				} else {
					v.sortBy, v.reverse = Column(c), false
				}
			}
		}
	}
	return false
}

// move shifts the highlight by n visible rows.
func (v *View) move(n int) {
	rows := v.visible()
	if len(rows) == 0 {
		return
	}
	i := slices.IndexFunc(rows, func(r *Row) bool { return r.PID == v.selPID })
	if i < 0 {
		i = 0
		if n > 0 {
			n--
		}
	}
	i = min(max(i+n, 0), len(rows)-1)
	v.selPID = rows[i].PID
}

// visible is the snapshot's rows that pass the filter, in the sort order.
func (v *View) visible() []*Row {
	var rows []*Row
	f := strings.ToLower(v.filter)
	for i := range v.snap.Rows {
		r := &v.snap.Rows[i]
		if f != "" && !strings.Contains(strings.ToLower(r.Name), f) && !strings.Contains(strings.ToLower(r.Cmd), f) {
			continue
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b *Row) int {
		c := compareBy(v.sortBy, a, b)
		if v.reverse {
			c = -c
		}
		if c != 0 {
			return c
		}
		return cmp.Compare(a.PID, b.PID)
	})
	return rows
}

// compareBy orders numbers busiest first and text alphabetically.
func compareBy(c Column, a, b *Row) int {
	switch c {
	case ColPID:
		return cmp.Compare(a.PID, b.PID)
	case ColName:
		return cmp.Compare(a.Name, b.Name)
	}
	return cmp.Compare(value(c, b), value(c, a))
}

func value(c Column, r *Row) float64 {
	switch c {
	case ColCPU:
		return r.CPU
	case ColRunqP50:
		return r.RunqP50
	case ColRunqP99:
		return r.RunqP99
	case ColSyscalls:
		return r.Syscalls
	case ColErrors:
		return r.Errors
	case ColFaults:
		return r.Faults
	case ColDisk:
		return r.Disk
	case ColRetrans:
		return r.Retrans
	}
	return 0
}

// cell formats one value of a row; "-" where the metric is absent.
func (v *View) cell(c Column, r *Row) string {
	if !v.snap.Has[c] {
		return "-"
	}
	switch c {
	case ColPID:
		return strconv.FormatInt(r.PID, 10)
	case ColName:
		return r.Name
	case ColCPU:
		return strconv.FormatFloat(r.CPU*100, 'f', 1, 64)
	case ColRunqP50, ColRunqP99:
		if !r.RunqOK {
			return "-"
		}
		return metrics.FormatValue(value(c, r), "s")
	case ColDisk:
		return metrics.FormatBytes(r.Disk)
	}
	return formatRate(value(c, r))
}

func formatRate(x float64) string {
	switch {
	case x >= 999_950:
		return strconv.FormatFloat(x/1e6, 'f', 1, 64) + "M"
	case x >= 9_999.5:
		return strconv.FormatFloat(x/1e3, 'f', 1, 64) + "k"
	case x >= 99.95:
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

// sortName is the sort column's title and direction for the header.
func (v *View) sortName() string {
	dir := "desc"
	if (v.sortBy == ColPID || v.sortBy == ColName) != v.reverse {
		dir = "asc"
	}
	return columns[v.sortBy].title + " " + dir
}

// Render draws the screen as lines of at most Width columns (at most
// Height lines). The highlighted row starts with '>' so that it can be seen
// without colours.
func (v *View) Render() []string {
	if v.detail {
		if r := v.selected(); r != nil {
			return v.clip(v.renderDetail(r))
		}
		v.detail = false // the process is gone
	}
	var lines []string
	head := "telagent top"
	if v.hasData {
		head += fmt.Sprintf("  %s", v.snap.Time.Local().Format("15:04:05"))
		if v.snap.Interval > 0 {
			head += fmt.Sprintf("  interval %s", v.snap.Interval.Round(10_000_000))
		}
	} else {
		head += "  collecting the first interval..."
	}
	rows := v.visible()
	head += fmt.Sprintf("  %d processes  sort: %s", len(rows), v.sortName())
	if v.filter != "" {
		head += fmt.Sprintf("  filter: %q", v.filter)
	}
	lines = append(lines, head)
	lines = append(lines, v.headerLine())

	if len(rows) > 0 && !slices.ContainsFunc(rows, func(r *Row) bool { return r.PID == v.selPID }) {
		v.selPID = rows[0].PID
	}
	room := max(v.Height-len(lines)-1, 0)
	// Keep the highlighted row on screen.
	first := 0
	if i := slices.IndexFunc(rows, func(r *Row) bool { return r.PID == v.selPID }); i >= room {
		first = i - room + 1
	}
	for i := first; i < len(rows) && i < first+room; i++ {
		lines = append(lines, v.rowLine(rows[i], rows[i].PID == v.selPID))
	}
	for len(lines) < v.Height-1 {
		lines = append(lines, "")
	}
	foot := "c r s e f d t p n </>: sort  /: filter  up/down Enter: histograms  q: quit"
	switch {
	case v.editing:
		foot = "filter by name: " + v.edit + "_  (Enter: apply, Esc: cancel)"
	case v.Status != "":
		foot = v.Status
	}
	lines = append(lines, foot)
	return v.clip(lines)
}

func (v *View) headerLine() string {
	var b strings.Builder
	b.WriteByte(' ')
	for c := range numColumns {
		col := columns[c]
		t := col.title
		if c == v.sortBy {
			t += "*"
		}
		b.WriteString(pad(t, col.width, col.left))
		b.WriteByte(' ')
	}
	return strings.TrimRight(b.String(), " ")
}

func (v *View) rowLine(r *Row, selected bool) string {
	var b strings.Builder
	if selected {
		b.WriteByte('>')
	} else {
		b.WriteByte(' ')
	}
	for c := range numColumns {
		col := columns[c]
		b.WriteString(pad(trunc(v.cell(c, r), col.width), col.width, col.left))
		b.WriteByte(' ')
	}
	return strings.TrimRight(b.String(), " ")
}

func (v *View) selected() *Row {
	for i := range v.snap.Rows {
		if v.snap.Rows[i].PID == v.selPID {
			return &v.snap.Rows[i]
		}
	}
	return nil
}

// renderDetail is the picked process: its numbers and every histogram of
// the interval drawn as bars.
func (v *View) renderDetail(r *Row) []string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "process %d %s", r.PID, r.Name)
	if r.Cmd != "" && r.Cmd != r.Name {
		fmt.Fprintf(&b, " (%s)", r.Cmd)
	}
	b.WriteString("   Esc/Enter: back  q: quit\n")
	var parts []string
	for c := ColCPU; c < numColumns; c++ {
		parts = append(parts, strings.ToLower(columns[c].title)+" "+v.cell(c, r))
	}
	b.WriteString(strings.Join(parts, "  ") + "\n")
	for _, kv := range r.ResourceAttr {
		if k := string(kv.Key); strings.HasPrefix(k, "container.") || strings.HasPrefix(k, "k8s.") {
			fmt.Fprintf(&b, "%s=%s\n", k, kv.Value.Emit())
		}
	}
	for _, h := range r.Hists {
		var n uint64
		for _, c := range h.Counts {
			n += c
		}
		b.WriteString("\n")
		if n == 0 {
			fmt.Fprintf(&b, "%s: nothing in the interval\n", h.Name)
			continue
		}
		p50, p99 := export.FormatQuantile(h.Bounds, h.Counts, h.Sum, 0.50, h.Unit), export.FormatQuantile(h.Bounds, h.Counts, h.Sum, 0.99, h.Unit)
		fmt.Fprintf(&b, "%s: %d in the interval, p50 %s, p99 %s\n", h.Name, n, p50, p99)
		export.WriteHistogramBars(&b, h.Bounds, h.Counts, h.Unit, v.Width, "  ")
	}
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}

// clip cuts lines to the screen.
func (v *View) clip(lines []string) []string {
	if v.Height > 0 && len(lines) > v.Height {
		lines = lines[:v.Height]
	}
	for i, l := range lines {
		lines[i] = trunc(l, v.Width)
	}
	return lines
}

// trunc cuts s to n columns (runes; the view prints no wide characters).
func trunc(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func pad(s string, n int, left bool) string {
	d := n - utf8.RuneCountInString(s)
	if d <= 0 {
		return s
	}
	if left {
		return s + strings.Repeat(" ", d)
	}
	return strings.Repeat(" ", d) + s
}

// Plain renders one snapshot as text for a stdout that is no terminal:
// every process row, sorted by on-CPU time, no highlight, no footer.
func Plain(s Snapshot, width int) string {
	v := NewView(width, 0)
	v.Update(s)
	var b strings.Builder
	head := fmt.Sprintf("--- %s", s.Time.UTC().Format("2006-01-02T15:04:05Z"))
	if s.Interval > 0 {
		head += fmt.Sprintf("  interval %s", s.Interval.Round(10_000_000))
	}
	rows := v.visible()
	fmt.Fprintf(&b, "%s  %d processes ---\n", head, len(rows))
	b.WriteString(trunc(v.headerLine(), width) + "\n")
	for _, r := range rows {
		b.WriteString(trunc(v.rowLine(r, false), width) + "\n")
	}
	return b.String()
}
