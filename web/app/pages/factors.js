import { h } from "../dom.js";

export class FactorsPage {
  mount(root) {
    this.el = h("section", { className: "page" }, h("h1", {}, "factors"), h("p", {}, "Coming next."));
    root.append(this.el);
  }

  unmount() {
    this.el?.remove();
  }
}
