import { h } from "../dom.js";

export class SessionsPage {
  mount(root) {
    this.el = h("section", { className: "page" }, h("h1", {}, "sessions"), h("p", {}, "Coming next."));
    root.append(this.el);
  }

  unmount() {
    this.el?.remove();
  }
}
