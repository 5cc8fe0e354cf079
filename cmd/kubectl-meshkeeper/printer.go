package main

import (
	"strings"
	"unicode/utf8"
)

// tone is how a fact reads at a glance; on a terminal it is a colour.
type tone int

const (
	plain tone = iota
	good       // green: done, available, up to date
	busy       // yellow: in progress, waiting, paused
	bad        // red: failed, stalled, needs a person
)

var toneCodes = map[tone]string{good: "\x1b[32m", busy: "\x1b[33m", bad: "\x1b[31m"}

// printer builds a report line by line, painting tones only with colour on.
type printer struct {
	strings.Builder
	colour bool
}

func (p *printer) line(parts ...string) {
	for _, s := range parts {
		p.WriteString(s)
	}
	p.WriteByte('\n')
}

func (p *printer) blank() { p.WriteByte('\n') }

func (p *printer) paint(t tone, s string) string {
	if !p.colour || t == plain || s == "" {
		return s
	}
	return toneCodes[t] + s + "\x1b[0m"
}

func (p *printer) bold(s string) string {
	if !p.colour {
		return s
	}
	return "\x1b[1m" + s + "\x1b[0m"
}

// cell is one cell of a table.
type cell struct {
	text string
	tone tone
}

// table prints rows indented by two spaces, columns aligned on their
// plain text (colour codes take no room) and two spaces apart; the last
// column is not padded.
func (p *printer) table(rows [][]cell) {
	var widths []int
	for _, row := range rows {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	for _, row := range rows {
		p.WriteString("  ")
		for i, c := range row {
			p.WriteString(p.paint(c.tone, c.text))
			if i < len(row)-1 {
				p.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		p.WriteByte('\n')
	}
}
