// Terminal output to text segments: SGR codes (colors, bold, italic, underline) become CSS classes; every other
// escape sequence (cursor moves, screen clears, titles, hyperlinks...) and control byte is dropped. The parser
// keeps its state between chunks, so a sequence cut between two log events is still recognised. It never builds
// markup: the caller puts each segment's text in a text node.
'use strict';

const ANSI_MAX_PARAMS = 64; // a longer CSI sequence is dropped whole

class AnsiParser {
  constructor() {
    this.state = 'text'; // text | esc | csi | osc | osc_esc | cr
    this.params = '';
    this.fg = null;
    this.bg = null;
    this.bold = false;
    this.dim = false;
    this.italic = false;
    this.underline = false;
  }

  classes() {
    const c = [];
    if (this.fg !== null) c.push('fg' + this.fg);
    if (this.bg !== null) c.push('bg' + this.bg);
    if (this.bold) c.push('b');
    if (this.dim) c.push('dim');
    if (this.italic) c.push('i');
    if (this.underline) c.push('u');
    return c.join(' ');
  }

  sgr(params) {
    const p = params === '' ? [0] : params.split(/[;:]/).map((x) => (x === '' ? 0 : parseInt(x, 10)));
    for (let i = 0; i < p.length; i++) {
      const n = p[i];
      if (n === 0) {
        this.fg = this.bg = null;
        this.bold = this.dim = this.italic = this.underline = false;
      } else if (n === 1) this.bold = true;
      else if (n === 2) this.dim = true;
      else if (n === 3) this.italic = true;
      else if (n === 4) this.underline = true;
      else if (n === 22) this.bold = this.dim = false;
      else if (n === 23) this.italic = false;
      else if (n === 24) this.underline = false;
      else if (n >= 30 && n <= 37) this.fg = n - 30;
      else if (n >= 90 && n <= 97) this.fg = n - 90 + 8;
      else if (n === 39) this.fg = null;
      else if (n >= 40 && n <= 47) this.bg = n - 40;
      else if (n >= 100 && n <= 107) this.bg = n - 100 + 8;
      else if (n === 49) this.bg = null;
      else if (n === 38 || n === 48) {
        // 256 colors (5;n: the first 16 map to ours) or true color (2;r;g;b: ignored)
        if (p[i + 1] === 5) {
          const c = p[i + 2];
          if (c >= 0 && c < 16) {
            if (n === 38) this.fg = c;
            else this.bg = c;
          }
          i += 2;
        } else if (p[i + 1] === 2) i += 4;
      }
    }
  }

  // Returns [{text, cls}] for the chunk.
  feed(chunk) {
    const out = [];
    let text = '';
    const flush = () => {
      if (text !== '') {
        out.push({ text: text, cls: this.classes() });
        text = '';
      }
    };
    for (let i = 0; i < chunk.length; i++) {
      const ch = chunk[i];
      const code = chunk.charCodeAt(i);
      switch (this.state) {
        case 'cr': // a lone CR (progress bars) reads as a new line; CR LF as one
          this.state = 'text';
          if (ch !== '\n') text += '\n';
        // falls through
        case 'text':
          if (ch === '\x1b') {
            this.state = 'esc';
          } else if (ch === '\r') {
            this.state = 'cr';
          } else if (ch === '\n' || ch === '\t' || (code >= 0x20 && code !== 0x7f && !(code >= 0x80 && code < 0xa0))) {
            text += ch;
          } // other control characters are dropped
          break;
        case 'esc':
          if (ch === '[') {
            this.state = 'csi';
            this.params = '';
          } else if (ch === ']') {
            this.state = 'osc';
          } else {
            this.state = 'text'; // a two-byte escape (ESC c, ESC 7 ...): dropped
          }
          break;
        case 'csi':
          if (code >= 0x40 && code <= 0x7e) {
            this.state = 'text';
            if (ch === 'm' && this.params.length <= ANSI_MAX_PARAMS && /^[0-9;:]*$/.test(this.params)) {
              flush();
              this.sgr(this.params);
            }
          } else if (this.params.length < ANSI_MAX_PARAMS + 1) {
            this.params += ch;
          }
          break;
        case 'osc': // ESC ] ... BEL or ESC \ : titles, hyperlinks; all dropped
          if (ch === '\x07') this.state = 'text';
          else if (ch === '\x1b') this.state = 'osc_esc';
          break;
        case 'osc_esc':
          this.state = ch === '\\' ? 'text' : 'osc';
          break;
      }
    }
    flush();
    return out;
  }
}

if (typeof module !== 'undefined') module.exports = { AnsiParser };
