// Print the text of an HTML file without its tags.
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
process.stdout.write(html.replace(/<script[\s\S]*?<\/script>/g, "").replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim());
