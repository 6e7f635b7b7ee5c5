// emitter.js - a tiny event emitter (on / once / off / emit) shared by the
// client and its subscriptions. A listener that throws does not stop the
// others: the error goes to reportError() where it exists (browsers: the
// console and window.onerror, like a DOM event handler), else it is rethrown
// asynchronously.

export class Emitter {
  constructor() {
    /** @type {Map<string, Function[]>} */
    this._listeners = new Map();
  }

  /** Add a listener; returns a function that removes it. */
  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    let list = this._listeners.get(event);
    if (!list) this._listeners.set(event, (list = []));
    list.push(fn);
    return () => this.off(event, fn);
  }

  /** A listener called at most once. */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn.apply(this, args);
    };
    wrapper.listener = fn;
    return this.on(event, wrapper);
  }

  /** Remove one listener (or every listener of event when fn is omitted). */
  off(event, fn) {
    const list = this._listeners.get(event);
    if (!list) return this;
    if (fn === undefined) {
      this._listeners.delete(event);
      return this;
    }
    const i = list.findIndex((l) => l === fn || l.listener === fn);
    if (i >= 0) list.splice(i, 1);
    if (!list.length) this._listeners.delete(event);
    return this;
  }

  /** Call every listener of event with args; returns whether there was one. */
  emit(event, ...args) {
    const list = this._listeners.get(event);
    if (!list || !list.length) return false;
    for (const fn of list.slice()) {
      try {
        fn.apply(this, args);
      } catch (e) {
        if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
        else setTimeout(() => { throw e; }, 0);
      }
    }
    return true;
  }

  listenerCount(event) {
    const list = this._listeners.get(event);
    return list ? list.length : 0;
  }
}
