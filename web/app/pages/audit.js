import { h } from "../dom.js";

export class AuditPage {
  mount(root) {
    this.el = h("section", { className: "page" }, h("h1", {}, "audit"), h("p", {}, "Coming next."));
    root.append(this.el);
  }

  unmount() {
    this.el?.remove();
  }
}
