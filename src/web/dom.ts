/** The two DOM helpers the views need: create an element, and keep a keyed list of children in step with data. */

type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>
type Child = Node | string | null | undefined | false

/** `h('button', { type: 'submit', onclick: f }, 'Send')`: `on*` are listeners, `false`/`null` omit an attribute. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') element.addEventListener(name.slice(2), value)
    else if (value !== false && value != null) element.setAttribute(name, value === true ? '' : String(value))
  }
  for (const child of children) if (child) element.append(child)
  return element
}

/** Sets an attribute, or removes it for null/undefined/false; touches the DOM only on a change. */
export function attr(element: Element, name: string, value: string | number | boolean | null | undefined): void {
  const next = value === false || value == null ? null : value === true ? '' : String(value)
  if (element.getAttribute(name) !== next) next === null ? element.removeAttribute(name) : element.setAttribute(name, next)
}

export function text(element: Element, value: string): void {
  if (element.textContent !== value) element.textContent = value
}

/**
 * Makes `container`'s children the rendering of `items`, in order: an item whose key was rendered before keeps
 * its element (updated in place, so focus and selection survive), new keys are created, the rest removed.
 */
export function keyed<T>(
  container: Element,
  items: readonly T[],
  key: (item: T) => string,
  create: (item: T) => HTMLElement,
  update: (element: HTMLElement, item: T) => void,
): void {
  const existing = new Map<string, HTMLElement>()
  for (const child of Array.from(container.children) as HTMLElement[]) if (child.dataset.key) existing.set(child.dataset.key, child)
  let cursor = container.firstElementChild
  for (const item of items) {
    const k = key(item)
    let element = existing.get(k)
    if (element) existing.delete(k)
    else {
      element = create(item)
      element.dataset.key = k
    }
    update(element, item)
    if (element !== cursor) container.insertBefore(element, cursor)
    else cursor = cursor.nextElementSibling
  }
  for (const stale of existing.values()) stale.remove()
}
