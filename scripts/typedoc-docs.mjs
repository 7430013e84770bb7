/**
 * TypeDoc plugin (typedoc.json `plugin`) for the docs site:
 *
 * - Package READMEs (`projectDocuments`) become pages named by their package (`@geofence/agent`),
 *   and docs/*.md keep their short names (`architecture`), so links between them are page links,
 *   not copied media files.
 * - ```mermaid fenced blocks of the README, the documents and doc comments render as diagrams,
 *   offline: the mermaid script is copied from the `mermaid` npm package into the site's assets.
 *
 * TypeDoc highlights a mermaid block like code (`<pre><code class="mermaid">` with Shiki spans);
 * after its markdown pass this plugin turns that into `<pre class="mermaid">` holding the diagram
 * source as escaped text, which mermaid reads through `textContent` and replaces with an SVG.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Converter, JSX, MarkdownEvent, RendererEvent } from 'typedoc';

const require = createRequire(import.meta.url);
const BLOCK = /<pre><code class="mermaid">([\s\S]*?)<\/code>(?:<button[\s\S]*?<\/button>)?<\/pre>/g;

/** Diagram source of a highlighted block: its text with the highlighting markup removed (entities stay escaped). */
const source = (html) => html.replace(/<[^>]+>/g, '');

/** @param {import('typedoc').Application} app */
export function load(app) {
  let diagrams = 0;
  // Document names are paths relative to the common directory (`packages/sdk-agent/README`).
  app.converter.on(Converter.EVENT_CREATE_DOCUMENT, (_context, doc) => {
    if (doc.name.endsWith('/README')) {
      const pkg = join(process.cwd(), dirname(doc.name), 'package.json');
      doc.name = existsSync(pkg) ? JSON.parse(readFileSync(pkg, 'utf8')).name : dirname(doc.name);
    } else if (doc.name.startsWith('docs/')) doc.name = doc.name.slice('docs/'.length);
  });
  // Low priority: after TypeDoc's own handler has turned the markdown into HTML.
  app.renderer.on(
    MarkdownEvent.PARSE,
    (event) => {
      event.parsedText = event.parsedText.replace(BLOCK, (_, code) => {
        diagrams += 1;
        return `<pre class="mermaid">${source(code)}</pre>`;
      });
    },
    -100,
  );
  app.renderer.hooks.on('body.end', (ctx) =>
    JSX.createElement(
      JSX.Fragment,
      null,
      JSX.createElement('script', { src: ctx.relativeURL('assets/mermaid.min.js'), defer: true }),
      JSX.createElement('script', { src: ctx.relativeURL('assets/mermaid-init.js'), defer: true }),
    ),
  );
  app.renderer.on(RendererEvent.END, (event) => {
    const assets = join(event.outputDirectory, 'assets');
    mkdirSync(assets, { recursive: true });
    copyFileSync(require.resolve('mermaid/dist/mermaid.min.js'), join(assets, 'mermaid.min.js'));
    // Follows the site's light/dark setting at load time.
    writeFileSync(
      join(assets, 'mermaid-init.js'),
      `mermaid.initialize({ startOnLoad: true, securityLevel: 'strict', theme: document.documentElement.dataset.theme === 'dark' || (document.documentElement.dataset.theme !== 'light' && matchMedia('(prefers-color-scheme: dark)').matches) ? 'dark' : 'default' });\n`,
    );
    app.logger.info(`mermaid: ${diagrams} diagram(s) rendered with the bundled mermaid script`);
  });
}
