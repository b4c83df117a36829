// Markdown to HTML: a small converter with no dependencies.
// usage: node md2html.js IN.md|- [OUT.html] [--title TITLE]
"use strict";
const fs = require("fs");

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function safeUrl(url) {
  return /^(https?:|mailto:|[^:]*$)/i.test(url) ? url : "";
}

function inline(text) {
  const codes = [];
  let out = escapeHtml(text).replace(/`([^`]+)`/g, (_, code) => {
    codes.push(code);
    return `\u0000${codes.length - 1}\u0000`;
  });
  out = out.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (_, label, url) => {
    const target = safeUrl(url);
    return target ? `<a href="${target}">${label}</a>` : label;
  });
  out = out.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
  out = out.replace(/\*([^*]+)\*/g, "<em>$1</em>").replace(/\b_([^_]+)_\b/g, "<em>$1</em>");
  return out.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

function convert(markdown) {
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  const html = [];
  let paragraph = [];
  let list = null; // "ul" or "ol"
  const flush = () => {
    if (paragraph.length) {
      html.push(`<p>${inline(paragraph.join(" "))}</p>`);
      paragraph = [];
    }
  };
  const closeList = () => {
    if (list) {
      html.push(`</${list}>`);
      list = null;
    }
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("```")) {
      flush();
      closeList();
      const body = [];
      i++;
      while (i < lines.length && !lines[i].startsWith("```")) {
        body.push(lines[i]);
        i++;
      }
      html.push(`<pre><code>${escapeHtml(body.join("\n"))}</code></pre>`);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    const bullet = /^\s*[-*]\s+(.*)$/.exec(line);
    const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      closeList();
      const level = heading[1].length;
      html.push(`<h${level}>${inline(heading[2])}</h${level}>`);
    } else if (bullet || numbered) {
      flush();
      const kind = bullet ? "ul" : "ol";
      if (list !== kind) {
        closeList();
        html.push(`<${kind}>`);
        list = kind;
      }
      html.push(`<li>${inline((bullet || numbered)[1])}</li>`);
    } else if (line.trim() === "") {
      flush();
      closeList();
    } else {
      closeList();
      paragraph.push(line.trim());
    }
  }
  flush();
  closeList();
  return html.join("\n");
}

function page(body, title) {
  return `<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>\n<body>\n${body}\n</body>\n</html>`;
}

function main(argv) {
  const titleAt = argv.indexOf("--title");
  let title = null;
  if (titleAt >= 0) {
    title = argv[titleAt + 1] || "";
    argv = argv.slice(0, titleAt).concat(argv.slice(titleAt + 2));
  }
  const [input = "-", output] = argv;
  let markdown;
  try {
    markdown = fs.readFileSync(input === "-" ? 0 : input, "utf8");
  } catch (err) {
    process.stderr.write(`error: cannot read ${input}: ${err.code || err.message}\n`);
    return 2;
  }
  const body = convert(markdown);
  const html = (title === null ? body : page(body, title)) + "\n";
  if (output) {
    fs.writeFileSync(output, html);
  } else {
    process.stdout.write(html);
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
